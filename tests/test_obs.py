"""OBS Studio itself (Debian's obs-studio 29, x264, simple output, otherwise its
defaults) publishing to the built-in ingest, headless under Xvfb, and a
destination receiving it. OBS runs in a network namespace joined to this host
by a veth pair: it reaches the ingest on the host's side of the pair and
nothing else (it asks obsproject.com for service lists at start)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .conftest import CANARY_KEY
from .netns import gateway, hosts_beside_this_one
from .obs_studio import obs_argv, obs_env, write_obs_config
from .support import NginxRtmp, eventually, free_port, require_tool
from .test_rtmp_flood import Flood
from .test_rtmp_ingest import KEY, wait_live, wait_platform

pytestmark = pytest.mark.integration


def lan_config(tmp_path: Path, address: str, port: int, platform_url: str) -> Config:
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": f"rtmp://{address}:{port}/live/stream",
                "listen": f"{address}:{port}",
                "publish_key": KEY,
            },
            "streams": [
                {"id": "tiktok", "name": "TikTok", "url": platform_url, "key": f"t-{CANARY_KEY}"}
            ],
        }
    )


async def probe_streams(url: str) -> list[str]:
    """What a player reads from url: 'h264,video,640,360', 'aac,audio'."""
    proc = await asyncio.create_subprocess_exec(
        require_tool("ffprobe"), "-v", "error", "-rw_timeout", "10000000",
        "-analyzeduration", "20000000", "-probesize", "50000000",
        "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "csv=p=0", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return sorted(line.strip(",") for line in out.decode().split())


async def stop_obs(proc: asyncio.subprocess.Process) -> None:
    """xvfb-run, its Xvfb and OBS: the process group started for them."""
    if proc.returncode is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("flood", [False, True], ids=["quiet", "flood"])
async def test_obs_studio_publishes_to_the_builtin_ingest(
    flood: bool,
    tmp_path: Path,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    argv = obs_argv()
    net = f"10.{200 + secrets.randbelow(50)}"  # apart from other tests' namespaces
    with hosts_beside_this_one(1, net) as [lan]:
        host = gateway(lan)
        config = lan_config(
            tmp_path, host, free_port(), f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"
        )
        service = services(config)
        await service.start()
        ingest = service.rtmp_server
        assert ingest is not None
        folder = tmp_path / "obs"
        (folder / "run").mkdir(parents=True, mode=0o700)
        write_obs_config(
            folder, config.ingest.url.rsplit("/", 1)[0], f"stream?key={KEY}"
        )  # OBS's Server and Stream Key fields, as docs/ingest.md says
        log = (folder / "obs.log").open("wb")
        env = obs_env(folder) | {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        # idle connections from 12 addresses keep coming while OBS connects
        flooding = Flood(ingest.port, host) if flood else None
        obs: asyncio.subprocess.Process | None = None
        try:
            if flooding is not None:

                async def full() -> bool:
                    return len(ingest._conns) >= ingest.limits.max_connections

                await eventually(full, 30, "the flood to fill the ingest")
            obs = await asyncio.create_subprocess_exec(
                *lan.argv(*argv),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd=folder,
            )
            before = flooding.opened if flooding else 0
            await wait_live(service, deadline_s=120)
            if flooding is not None:
                assert not flooding.task.done()
                assert flooding.opened - before > 2 * ingest.limits.max_connections
                await flooding.stop()
            assert service.hub is not None
            info = service.hub.session_info()
            assert (info.video_codec, info.resolution) == ("H.264", "640x360"), info
            assert info.audio_codec == "AAC"
            text = "\n".join(r.getMessage() for r in caplog.records)
            assert f"built-in ingest: {lan.address} publishes live/stream" in text
            await service.router.set_enabled("tiktok", True)
            key = config.streams[0].target.rsplit("/", 1)[1]
            await wait_platform(platforms, key, 60)
            # OBS's default keyframe interval is 250 frames: a player may wait 8 s for one
            served = await probe_streams(platforms.url(key))
            assert served == ["aac,audio", "h264,video,640,360"], served
            # OBS stops: the session ends at once
            await stop_obs(obs)
            await wait_live(service, False, 10)
        finally:
            if flooding is not None:
                await flooding.stop()
            if obs is not None:
                await stop_obs(obs)
            log.close()
            await service.router.set_enabled("tiktok", False)
        obs_log = (folder / "obs.log").read_text(errors="replace")
        assert f"Connection to rtmp://{host}:" in obs_log and "successful" in obs_log
        assert KEY not in caplog.text
