"""The process's open-file limit, and the event loop's own error reports.

Every relay, ffmpeg pipe, MQTT connection, state-file write and web page
connection takes a descriptor; many hosts start services with a soft limit of
1024. The soft limit is raised to the hard one at start, and the web server
keeps RESERVE_FILES of the rest for everything else (transports/http/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from mqttrelay.lib.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

WANTED_FILES = 65536
RESERVE_FILES = 512  # relays (3 each, 100 at most), encoders, MQTT, nginx, files


def raise_open_file_limit(wanted: int = WANTED_FILES) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return soft if soft != resource.RLIM_INFINITY else wanted


class QuietLoopErrors:
    """The loop's exception handler: a resource error asyncio reports once per
    try (CPython's accept loop reports EMFILE for every accept it tries, and
    retries each a second later) is logged once a minute, without a traceback;
    everything else as asyncio would."""

    def __init__(self, period_s: float = 60.0) -> None:
        self._warnings = RateLimitedLog(logging.getLogger("asyncio"), period_s)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        # after such errors, the retries asyncio queued fail once the server has closed
        retry = "_start_serving" in repr(context.get("handle"))
        if "out of system resource" in message or retry:
            self._warnings.warning(
                "%s: %s (logged once a minute)", message.split("\n")[0], exc or "?", key=retry
            )
            return
        loop.default_exception_handler(context)
