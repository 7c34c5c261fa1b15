"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any], retry_s: float = 1.0) -> None:
    """Cancel tasks and wait until they are done.

    Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as
    its inner future completes (fixed in 3.12), which would leave a task
    running forever: cancel again until each one has ended.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
