"""The supervisor (lib/supervisor.py) as a state machine: fake children that end
when a test says, and a fake clock, so a minute of backoff takes no time. The
process part (ChildProcess) runs a real short-lived `sh`."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

import pytest

from mqttrelay.lib.backoff import Backoff
from mqttrelay.lib.redact import Redactor
from mqttrelay.lib.supervisor import (
    ChildProcess,
    Ended,
    Phase,
    StartError,
    Supervisor,
    stderr_reader,
)

DEADLINE_S = 10.0  # generous: the machine is shared


class FakeChild:
    def __init__(self) -> None:
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = False

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    def exit(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.closed = True
        self.exit(-9)


class FakeClock:
    """Time moves only by the pauses the supervisor takes (auto) or by advance()."""

    def __init__(self, auto: bool = True) -> None:
        self.t = 0.0
        self.auto = auto
        self.pauses: list[float | None] = []

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        self.pauses.append(timeout_s)
        deadline = None if timeout_s is None else self.t + timeout_s
        await asyncio.sleep(0)
        if self.auto and deadline is not None and not event.is_set():
            self.t = deadline
            return
        while True:
            if event.is_set() or (deadline is not None and self.t >= deadline):
                return
            await asyncio.sleep(0.001)


class Starter:
    """Hands out fake children; each one runs `run_s` of fake time, then exits."""

    def __init__(self, clock: FakeClock, run_s: float = 1.0, code: int = 1) -> None:
        self.clock = clock
        self.run_s = run_s
        self.code = code
        self.children: list[FakeChild] = []
        self.fail_with: str | None = None

    async def __call__(self) -> FakeChild:
        if self.fail_with is not None:
            raise StartError(self.fail_with)
        child = FakeChild()
        self.children.append(child)
        return child

    async def watch_to_exit(self, child: FakeChild) -> str | None:
        self.clock.advance(self.run_s)
        child.exit(self.code)
        return f"exited with code {await child.wait()}"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


def recorder(phases: list[Phase]) -> Callable[[Phase], None]:
    def on_state(phase: Phase) -> None:
        if not phases or phases[-1] is not phase:
            phases.append(phase)

    return on_state


async def test_a_failing_child_is_restarted_with_the_policys_backoff() -> None:
    clock = FakeClock()
    starter = Starter(clock, run_s=2.0, code=3)
    backoff = Backoff(0.5, 4.0, stable_s=30.0, rng=random.Random(1))
    ended: list[Ended] = []
    given: list[float] = []

    def after(e: Ended) -> float:
        ended.append(e)
        given.append(backoff.failed(e.ran_s))
        return given[-1]

    sup: Supervisor[FakeChild] = Supervisor(
        "t",
        starter,
        after,
        watch=starter.watch_to_exit,
        wanted=lambda: len(starter.children) < 6,
        clock=clock,
    )
    sup.start()
    await sup.join()
    assert len(starter.children) == 6 and all(c.closed for c in starter.children)
    # the sixth run ends unwanted: no reason asked, no restart counted
    assert sup.restarts == 5 == len(ended)
    assert {e.reason for e in ended} == {"exited with code 3"}
    assert all(e.started and e.ran_s == 2.0 for e in ended)
    assert clock.pauses == pytest.approx(given)  # each pause is the policy's, whole
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(c / 2 <= p <= c for p, c in zip(given, ceilings, strict=True)), given
    assert sup.last_reason == "exited with code 3" and sup.phase is Phase.STOPPED


async def test_a_run_that_ended_as_wanted_restarts_at_once_and_counts_no_restart() -> None:
    clock = FakeClock()
    starter = Starter(clock)
    runs = 0

    async def watch(child: FakeChild) -> str | None:
        nonlocal runs
        runs += 1
        return None

    def after(e: Ended) -> float:
        raise AssertionError("no reason, no policy")

    sup: Supervisor[FakeChild] = Supervisor(
        "t", starter, after, watch=watch, wanted=lambda: runs < 3, clock=clock
    )
    await sup.run()
    assert runs == 3 and sup.restarts == 0 and clock.pauses == []
    assert all(c.closed for c in starter.children)


async def test_a_child_that_cannot_start_gives_its_reason_and_is_tried_again() -> None:
    clock = FakeClock()
    starter = Starter(clock)
    starter.fail_with = "cannot start ffmpeg: No such file or directory"
    ended: list[Ended] = []

    def after(e: Ended) -> float:
        ended.append(e)
        if len(ended) == 2:
            starter.fail_with = None
        return 5.0

    sup: Supervisor[FakeChild] = Supervisor(
        "t", starter, after, watch=starter.watch_to_exit,
        wanted=lambda: not starter.children, clock=clock,
    )  # fmt: skip
    await sup.run()
    assert [e.started for e in ended] == [False, False]
    assert ended[0].reason == "cannot start ffmpeg: No such file or directory"
    assert clock.pauses == [5.0, 5.0] and len(starter.children) == 1


async def test_not_ready_waits_then_starts_and_switching_off_closes_the_child() -> None:
    clock = FakeClock()
    starter = Starter(clock)
    ready = wanted = False
    phases: list[Phase] = []

    async def watch(child: FakeChild) -> str | None:
        await until(lambda: not wanted)
        return None

    sup: Supervisor[FakeChild] = Supervisor(
        "t", starter, lambda e: 1.0, watch=watch, wanted=lambda: wanted,
        ready=lambda: ready, on_state=recorder(phases), clock=clock,
    )  # fmt: skip
    wanted = True
    sup.start()
    await until(lambda: sup.phase is Phase.WAITING)
    sup.wake()  # a wake-up that changes nothing keeps it waiting
    await asyncio.sleep(0.01)
    assert sup.phase is Phase.WAITING and not starter.children
    ready = True
    sup.wake()
    await until(lambda: sup.phase is Phase.RUNNING)
    assert sup.child is starter.children[0] and sup.active
    wanted = False
    sup.wake()
    await sup.join()
    assert starter.children[0].closed and sup.child is None and not sup.active
    assert phases == [Phase.WAITING, Phase.STARTING, Phase.RUNNING, Phase.STOPPED]


async def test_retry_now_ends_the_pause_and_switching_off_ends_it_too() -> None:
    clock = FakeClock(auto=False)  # time stands still: only a wake-up ends a pause
    starter = Starter(clock)
    wanted = True
    sup: Supervisor[FakeChild] = Supervisor(
        "t", starter, lambda e: 30.0, watch=starter.watch_to_exit,
        wanted=lambda: wanted, clock=clock,
    )  # fmt: skip
    sup.start()
    await until(lambda: sup.phase is Phase.RETRYING)
    sup.wake()  # not a retry: it keeps pausing
    await asyncio.sleep(0.01)
    assert sup.phase is Phase.RETRYING and len(starter.children) == 1
    sup.retry_now()
    await until(lambda: len(starter.children) == 2 and sup.phase is Phase.RETRYING)
    clock.advance(29.0)
    await asyncio.sleep(0.01)
    assert len(starter.children) == 2  # 29 of its 30 s
    clock.advance(1.0)
    await until(lambda: len(starter.children) == 3)
    await until(lambda: sup.phase is Phase.RETRYING)
    wanted = False
    sup.wake()
    await sup.join()
    assert not sup.active and sup.child is None and sup.restarts == 3


async def test_a_retry_asked_during_a_run_is_forgotten() -> None:
    clock = FakeClock(auto=False)
    starter = Starter(clock)
    sup: Supervisor[FakeChild] = Supervisor("t", starter, lambda e: 30.0, clock=clock)
    sup.start()
    await until(lambda: sup.phase is Phase.RUNNING)
    sup.retry_now()
    assert sup.child is not None
    sup.child.exit(1)
    await until(lambda: sup.phase is Phase.RETRYING)
    await asyncio.sleep(0.01)
    assert len(starter.children) == 1 and sup.last_reason == "exited with code 1"
    await sup.stop()


async def test_stop_cancels_and_closes_the_running_child_and_adopts_a_first_one() -> None:
    clock = FakeClock()
    starter = Starter(clock)
    phases: list[Phase] = []
    first = FakeChild()
    sup: Supervisor[FakeChild] = Supervisor(
        "t", starter, lambda e: 0.0, on_state=recorder(phases), clock=clock
    )
    sup.start(first)
    await until(lambda: sup.phase is Phase.RUNNING)
    assert sup.child is first and not starter.children  # the started one, adopted
    first.exit(0)
    await until(lambda: len(starter.children) == 1 and sup.phase is Phase.RUNNING)
    await sup.stop()
    assert first.closed and starter.children[0].closed
    assert phases[-1] is Phase.STOPPED and sup.restarts == 1


async def test_a_slow_close_finishes_even_when_cancelled_again() -> None:
    closed = asyncio.Event()

    class SlowChild(FakeChild):
        async def close(self) -> None:
            await asyncio.sleep(0.3)
            await super().close()
            closed.set()

    async def start() -> SlowChild:
        return SlowChild()

    sup: Supervisor[SlowChild] = Supervisor("slow-close", start, lambda e: 0.0)
    sup.start()
    await until(lambda: sup.phase is Phase.RUNNING)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "slow-close"]
    for _ in range(3):
        task.cancel()
        await asyncio.sleep(0.05)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()  # the task ended only after its child was closed


async def test_child_process_reads_masked_stderr_and_reports_its_end() -> None:
    tail: deque[str] = deque(maxlen=5)
    logged: list[str] = []
    exited = asyncio.Event()
    child = await ChildProcess.spawn(
        ["sh", "-c", "echo 'bad key SECRET-1 here' >&2; exit 3"],
        "test-owner",
        "sh",
        stdin=False,
        grace_s=1.0,
        readers=[stderr_reader(Redactor(["SECRET-1"]), tail, logged.append)],
        on_exit=exited.set,
        measure=True,
    )
    async with asyncio.timeout(DEADLINE_S):
        assert await child.wait() == 3
        await exited.wait()
        await child.drained(DEADLINE_S)
    assert child.pid is None and child.usage() == (0.0, 0.0)
    assert list(tail) == logged and len(tail) == 1 and "SECRET-1" not in tail[0]
    await child.close()
    assert all(task.done() for task in child.readers)


async def test_child_process_that_cannot_start_says_which_and_why() -> None:
    with pytest.raises(StartError, match=r"^cannot start stunnel: No such file"):
        await ChildProcess.spawn(
            ["/nonexistent/stunnel"], "test-owner", "stunnel", stdin=False, grace_s=1.0
        )


async def test_child_process_close_stops_a_running_one() -> None:
    child = await ChildProcess.spawn(
        ["sleep", "60"], "test-owner", "sleep", stdin=True, grace_s=0.5, measure=True
    )
    assert child.pid is not None
    cpu, mem = child.usage()
    assert cpu >= 0.0 and mem > 0.0
    async with asyncio.timeout(DEADLINE_S):
        await child.close()
    assert child.returncode is not None and child.pid is None
