"""What the benchmark parts share: when a stream has arrived at the platform,
watched by one poller for every key of a try (as the toggle part always did)."""

from __future__ import annotations

import asyncio
import statistics
import time

from tests.support import NginxRtmp, StatStream, stat_client, stat_streams

POLL_S = 0.005

MEDIA_BYTES = 4000  # headers alone are under 1 KB; the first keyframe is several KB


def arrived(stream: StatStream | None) -> bool:
    """Publishing, both codecs known, and media (not only headers) in."""
    return bool(
        stream
        and stream.publishing
        and stream.video_codec
        and stream.audio_codec
        and stream.bytes_in >= MEDIA_BYTES
    )


async def wait_for_keys(
    platform: NginxRtmp, keys: list[str], gone: bool = False, limit_s: float = 30
) -> dict[str, float]:
    """Seconds until each key has arrived (or is gone), measured from now; one
    poll of the platform's stat page serves every key, so two keys of a try are
    timed alike and the polling costs the machine what it costs with one."""
    done: dict[str, float] = {}
    async with stat_client() as client:
        start = time.perf_counter()
        while len(done) < len(keys):
            streams = await stat_streams(platform, client)
            now = time.perf_counter() - start
            for key in keys:
                if key in done:
                    continue
                present = streams.get(key)
                if (gone and (present is None or not present.publishing)) or (
                    not gone and arrived(present)
                ):
                    done[key] = now
            if now > limit_s:
                raise TimeoutError(f"{keys} never {'left' if gone else 'arrived'}")
            await asyncio.sleep(POLL_S)
    return done


def summary(
    values: list[float], percentiles: tuple[float, ...] = (0.9, 0.95), least: bool = False
) -> dict[str, float]:
    """n, median, (min,) the given percentiles (nearest rank) and max, in seconds to
    the millisecond: every part's figures in one shape."""
    ordered = sorted(values)
    out: dict[str, float] = {"n": len(values), "median": round(statistics.median(ordered), 3)}
    if least:
        out["min"] = round(ordered[0], 3)
    for p in percentiles:
        out[f"p{round(p * 100)}"] = round(
            ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))], 3
        )
    out["max"] = round(ordered[-1], 3)
    return out
