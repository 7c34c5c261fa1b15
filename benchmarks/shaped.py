"""A slow link to one platform (issue 25), measured: part `shaped` of
benchmarks/bench.py. The lab is tests/shaped_run.py: mqttrelay relays a
~2.5 Mbit/s frame-counter stream to a platform on loopback and to platforms
behind links shaped to 1 and 2.2 Mbit/s (tbf on a veth into a network
namespace) for `shaped_s`, then unshaped. Per destination: the delay a viewer
at the platform sees over time, skips ahead, reconnects (the platform's
publisher client id), the API's status, delay_ms and dropped_share, and how
soon it recovers once the shaping is gone. Needs root (namespaces and tc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.shaped_run import Plan, Run, run_shaped
from tests.shaped_summary import summary


def timeline(run: Run, every_s: float = 1.0) -> dict[str, list[list[Any]]]:
    """Per destination: [t, delay_s, publisher_id, status, delay_ms, dropped_share]
    about every every_s (the run samples twice as often)."""
    out: dict[str, list[list[Any]]] = {}
    for sid, samples in run.samples.items():
        rows: list[list[Any]] = []
        for s in samples:
            if not rows or s.t - rows[-1][0] >= every_s - 0.05:
                rows.append([s.t, s.delay_s, s.publisher_id, s.status, s.delay_ms, s.dropped_share])
        out[sid] = rows
    return out


async def bench_shaped(
    folder: Path, shaped_s: float = 180.0, max_delay_s: float | None = None
) -> dict[str, Any]:
    run = await run_shaped(folder, Plan(shaped_s=shaped_s, max_delay_s=max_delay_s))
    result = summary(run)
    for row in result["destinations"]:
        print(
            f"shaped: {row['id']} ({row['rate_kbit'] or 'unshaped'} kbit/s): delay max "
            f"{row['delay_max_s']} s, every 10 s {row['delay_every_10s']}, "
            f"{row['reconnects']} reconnects, {row['skips_ahead']} skips ahead, statuses "
            f"{row['statuses']}, dropped share max {row['dropped_share_max']}, "
            f"recovered after {row['recovered_after_s']} s",
            flush=True,
        )
    result["timeline"] = timeline(run)
    return result
