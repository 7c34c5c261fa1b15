"""Run a child while it is wanted: start it, watch it end, say why, and start it
again after the pause its owner's policy gives (lib/backoff.py). The tap,
relays, profile encoders and managed nginx share this loop; `ChildProcess` is
the process part (spawn, the tasks reading its output, stop) that they and the
TLS tunnel share."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import psutil

from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.redact import Redactor


class StartError(Exception):
    """The child could not start; the message is the reason."""


class Child(Protocol):
    """What a supervisor runs: a process, or a fake of one in tests."""

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    async def close(self) -> None:
        """End it if it runs, and what reads it; idempotent."""


class Phase(enum.Enum):
    WAITING = "waiting"  # wanted, but not ready (no input)
    STARTING = "starting"  # a start is under way
    RUNNING = "running"
    RETRYING = "retrying"  # the pause before the next start
    STOPPED = "stopped"  # no longer wanted, or stopped


@dataclass(frozen=True)
class Ended:
    """Why a run ended while the child was still wanted."""

    reason: str
    ran_s: float  # from the start of the try to its end
    started: bool  # False: it could not start (StartError)


class Clock(Protocol):
    def now(self) -> float: ...

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Until the event is set or timeout_s passed (None: no limit)."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)


C = TypeVar("C", bound=Child)


async def exit_reason(child: Child) -> str:
    """The default watch: the child's own end."""
    return f"exited with code {await child.wait()}"


def _always() -> bool:
    return True


def _ignore(_: Phase) -> None:
    pass


class Supervisor(Generic[C]):
    """One child at a time, while wanted() holds.

    start: starts a child (raises StartError with the reason when it cannot).
    watch: returns when the run is over: its reason, or None when it ended as
      wanted (then the next start is at once, and counts as no restart);
      the child is closed after it, also when it was cancelled.
    after: given each run that ended with a reason while still wanted, says
      it (log, state) and returns the pause before the next start.
    ready: while False the next start waits (WAITING) for a wake().
    on_state: each phase as it begins.
    """

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[C]],
        after: Callable[[Ended], float],
        *,
        watch: Callable[[C], Awaitable[str | None]] = exit_reason,
        wanted: Callable[[], bool] = _always,
        ready: Callable[[], bool] = _always,
        on_state: Callable[[Phase], None] = _ignore,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._after = after
        self._watch = watch
        self._wanted = wanted
        self._ready = ready
        self._on_state = on_state
        self._clock = clock or MonotonicClock()
        self._event = asyncio.Event()
        self._retry_now = False
        self._first: C | None = None
        self._task: asyncio.Task[None] | None = None
        self.child: C | None = None  # the running one
        self.phase = Phase.STOPPED
        self.restarts = 0  # runs that ended with a reason while wanted
        self.last_reason: str | None = None

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, child: C | None = None) -> None:
        """Supervise, unless it already does; `child` (already started) is the first run."""
        if not self.active:
            self._first = child
            self._task = asyncio.create_task(self.run(), name=self.name)

    def wake(self) -> None:
        """Something wanted() or ready() read may have changed."""
        self._event.set()

    def retry_now(self) -> None:
        """End the pause before the next start (a poke during a run is forgotten)."""
        self._retry_now = True
        self._event.set()

    async def join(self) -> None:
        """Wait for the loop to end by itself (after wanted() turned False)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        """Cancel the loop; the child is closed before this returns."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def run(self) -> None:
        try:
            while self._wanted():
                if not self._ready():
                    self._set(Phase.WAITING)
                    await self._wait_until(lambda: not self._wanted() or self._ready(), None)
                    continue
                ended = await self._run_once()
                self._retry_now = False
                if ended is None or not self._wanted():
                    continue
                self.restarts += 1
                self.last_reason = ended.reason
                pause = self._after(ended)
                if pause > 0:
                    self._set(Phase.RETRYING)
                    await self._wait_until(lambda: not self._wanted() or self._retry_now, pause)
        finally:
            self.child = None
            self._set(Phase.STOPPED)

    async def _run_once(self) -> Ended | None:
        self._set(Phase.STARTING)
        began = self._clock.now()
        child, self._first = self._first, None
        if child is None:
            try:
                child = await self._start()
            except StartError as exc:
                return Ended(str(exc), self._clock.now() - began, started=False)
        self.child = child
        self._set(Phase.RUNNING)
        try:
            reason = await self._watch(child)
        finally:
            await _close_uncancelled(child)
            self.child = None
        return None if reason is None else Ended(reason, self._clock.now() - began, started=True)

    async def _wait_until(self, condition: Callable[[], bool], limit_s: float | None) -> None:
        """Wait for wake-ups until condition() holds or limit_s passes."""
        deadline = None if limit_s is None else self._clock.now() + limit_s
        while not condition():
            self._event.clear()
            remaining = None if deadline is None else deadline - self._clock.now()
            if remaining is not None and remaining <= 0:
                return
            await self._clock.wait(self._event, remaining)

    def _set(self, phase: Phase) -> None:
        self.phase = phase
        self._on_state(phase)


async def _close_uncancelled(child: Child) -> None:
    """Close the child to the end even when cancelled meanwhile: a process is
    never left unreaped. The cancellation is raised afterwards."""
    closing = asyncio.ensure_future(child.close())
    cancelled = False
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    closing.result()


Reader = Callable[[asyncio.subprocess.Process], Coroutine[Any, Any, None]]


def stderr_reader(redactor: Redactor, tail: deque[str], logger: Callable[[str], None]) -> Reader:
    """Reads stderr to its end, each line masked (process.read_stderr)."""

    def read(proc: asyncio.subprocess.Process) -> Coroutine[Any, Any, None]:
        return process.read_stderr(proc.stderr, redactor, tail, logger)

    return read


class ChildProcess:
    """A spawned process, the tasks that read its output, and its CPU and memory."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        grace_s: float,
        readers: Iterable[Reader] = (),
        on_exit: Callable[[], None] | None = None,
        measure: bool = False,
    ) -> None:
        self.proc = proc
        self._grace_s = grace_s
        self.readers = [asyncio.create_task(read(proc)) for read in readers]
        self._tasks = list(self.readers)
        if on_exit is not None:
            self._tasks.append(asyncio.create_task(self._notify_exit(on_exit)))
        self._ps: psutil.Process | None = None
        if measure:
            with contextlib.suppress(psutil.Error):
                self._ps = psutil.Process(proc.pid)
                self._ps.cpu_percent(None)  # the first call only starts the count

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        owner: str,
        what: str,
        *,
        stdin: bool,
        grace_s: float,
        capture: bool = True,
        readers: Iterable[Reader] = (),
        on_exit: Callable[[], None] | None = None,
        measure: bool = False,
    ) -> ChildProcess:
        """process.spawn(); `what` names the program in the StartError."""
        try:
            proc = await process.spawn(argv, owner, stdin=stdin, capture=capture)
        except OSError as exc:
            raise StartError(f"cannot start {what}: {exc.strerror or exc}") from None
        return cls(proc, grace_s, readers, on_exit, measure)

    @property
    def pid(self) -> int | None:
        """While it runs."""
        return self.proc.pid if self.proc.returncode is None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    async def drained(self, timeout_s: float) -> None:
        """Until the readers reached the end of the output, at most timeout_s: an
        exit can be noticed before its last lines."""
        if self.readers:
            await asyncio.wait(self.readers, timeout=timeout_s)

    def usage(self) -> tuple[float, float]:
        """(CPU percent since the last call, resident memory in MB); zeros when unknown."""
        if self._ps is None or self.pid is None:
            return 0.0, 0.0
        try:
            return self._ps.cpu_percent(None), round(self._ps.memory_info().rss / 2**20, 1)
        except psutil.Error:
            return 0.0, 0.0

    async def stop(self) -> str:
        """process.stop_process(): stdin closed, SIGTERM, SIGKILL; the step that ended it."""
        return await process.stop_process(self.proc, self._grace_s)

    async def kill(self) -> None:
        await process.kill_process(self.proc)

    async def close(self) -> None:
        if self.proc.returncode is None:
            await self.stop()
        await cancel_and_wait(*self._tasks)

    async def _notify_exit(self, on_exit: Callable[[], None]) -> None:
        await self.proc.wait()
        on_exit()
