# One image for Docker, Home Assistant Container and the Home Assistant add-on:
# ffmpeg, nginx with the RTMP module, and mqttrelay, run by `mqttrelay container`
# with its own ingest on port 1935 and the page on 8088; config and state in /data.
# The add-on builds this same file (addon/Dockerfile is a copy, kept equal by the
# tests) on Home Assistant's Debian base (addon/build.yaml); its folder holds no
# source, so it installs the release's source archive instead.
ARG BUILD_FROM=debian:bookworm-slim
FROM ${BUILD_FROM}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONUNBUFFERED=1
RUN apt-get update \
    && apt-get install -y -q --no-install-recommends \
        ca-certificates ffmpeg nginx libnginx-mod-rtmp python3 python3-venv \
        stunnel4 tini tzdata \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default

# the service's user: mqttrelay, its nginx and ffmpeg run as it. `mqttrelay
# container` starts as root only to hand /data (and the add-on's /config, which
# the Supervisor mounts root-owned) to it, then becomes it with setpriv
# (util-linux, in every Debian base) and runs without the Supervisor's token
RUN groupadd --system --gid 1935 mqttrelay \
    && useradd --system --uid 1935 --gid mqttrelay --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin mqttrelay \
    && install -d -o mqttrelay -g mqttrelay -m 0700 /data

# after the packages, so that these do not rebuild that layer
ARG BUILD_VERSION
ARG MQTTRELAY_ARCHIVE=https://github.com/mqttrelay/mqttrelay/archive/refs/tags/v${BUILD_VERSION}.tar.gz
# PIP_CERT: a CA file for pip behind a TLS-inspecting proxy (scripts/test-image)
ARG PIP_CERT
# the repository's root (.dockerignore: the package only), or the add-on's folder
COPY . /usr/src/mqttrelay/
RUN if [ -f /usr/src/mqttrelay/pyproject.toml ]; then source=/usr/src/mqttrelay; \
    else source="$MQTTRELAY_ARCHIVE"; fi \
    && python3 -m venv /opt/mqttrelay \
    && /opt/mqttrelay/bin/pip install --no-cache-dir --no-compile -q "$source" \
    && ln -s /opt/mqttrelay/bin/mqttrelay /usr/local/bin/mqttrelay \
    && rm -rf /usr/src/mqttrelay

# config and state: mount a volume or a folder at /data (docker-compose.yml does)
EXPOSE 1935/tcp 8088/tcp
# the page answers without a token; mqttrelay serves it once everything has started
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["/opt/mqttrelay/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8088/', timeout=4)"]
# tini as PID 1: passes SIGTERM on to mqttrelay, which stops its relays and nginx
ENTRYPOINT ["/usr/bin/tini", "--", "mqttrelay", "container"]
