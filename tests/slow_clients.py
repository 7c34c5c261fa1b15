"""Slow HTTP clients (slowloris) on loopback, as their own process, the way an
attacker's machine is not the page's user's:

    python -m tests.slow_clients PORT COUNT SECONDS

COUNT connections each send half a request head, a header line every few
seconds, and connect again as soon as they are closed; after SECONDS all stop
(or when the process is killed). It prints "connects=N open=M" every second."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from dataclasses import dataclass


@dataclass
class Counts:
    connects: int = 0
    open_now: int = 0
    peak: int = 0


async def _client(port: int, n: int, until: float, counts: Counts) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        counts.connects += 1
        counts.open_now += 1
        counts.peak = max(counts.peak, counts.open_now)
        try:
            writer.write(b"GET /api/streams HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while time.monotonic() < until:
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(1024), 3):
                        break  # closed by the server: connect again
                writer.write(b"X-Slow-%d: 1\r\n" % n)
                await writer.drain()
        except OSError:
            pass
        finally:
            counts.open_now -= 1
            writer.close()


async def main(port: int, count: int, seconds: float) -> Counts:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 100)), hard))
    counts = Counts()
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(_client(port, n, until, counts)) for n in range(count)]

    async def report() -> None:
        while True:
            print(f"connects={counts.connects} open={counts.open_now}", flush=True)
            await asyncio.sleep(1)

    reporter = asyncio.create_task(report())
    await asyncio.sleep(seconds + 1)
    for task in [*tasks, reporter]:
        task.cancel()
    await asyncio.gather(*tasks, reporter, return_exceptions=True)
    return counts


if __name__ == "__main__":
    result = asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
    print(f"connects={result.connects} open={result.open_now} peak={result.peak}", flush=True)
