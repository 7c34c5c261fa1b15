"""The command router (control/router.py) as a state machine: fake relays, a fake
ingest and a fake clock, no process. Switching, switch-backs, timers firing
through the router's callback, reloads, and the events the state file follows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mqttrelay.config import StreamConfig
from mqttrelay.control.persistence import Persistence, StateFile
from mqttrelay.control.reload import ReloadPlan
from mqttrelay.control.router import (
    ChangeEvent,
    Router,
    StaleVersionError,
    UnknownStreamError,
)
from mqttrelay.control.state import load_state
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.status import Status

from .fakes import FakeRelays, FakeSource, FakeTimekeeper
from .kit import CANARY_KEY


def stream(sid: str, enabled: bool = False, name: str = "", key: str = "") -> StreamConfig:
    return StreamConfig(
        id=sid,
        name=name or sid.title(),
        url="rtmp://127.0.0.1:9/app",
        key=key or f"{sid}-{CANARY_KEY}",
        enabled=enabled,
    )


class Lab:
    """A router on fakes, started with `streams`; events as they were emitted."""

    def __init__(self, *streams: StreamConfig, desired: dict[str, bool] | None = None) -> None:
        self.relays = FakeRelays()
        self.source = FakeSource()
        self.clock = FakeTimekeeper()
        self.router = Router(
            self.relays,
            self.source,
            "cached",
            self.clock,
            redactor=Redactor([f"tiktok-{CANARY_KEY}"]),
        )
        self.clock.switch = self.router.switch  # as app.Service wires the real clock
        self.events: list[ChangeEvent] = []
        self.router.add_listener(self.events.append)
        self.router.start(list(streams), desired or {})

    def kinds(self) -> list[tuple[str, str | None]]:
        seen: list[tuple[str, str | None]] = [(e.kind, e.stream_id) for e in self.events]
        self.events.clear()
        return seen


async def test_start_takes_the_saved_position_over_the_configured_one() -> None:
    lab = Lab(stream("tiktok", enabled=True), stream("youtube"), desired={"tiktok": False})
    assert lab.router.stream_ids == ["tiktok", "youtube"]
    assert lab.relays.of("tiktok").calls == [False]
    assert lab.router.desired() == {"tiktok": False, "youtube": False}


async def test_switching_reaches_the_relay_once_and_says_so() -> None:
    lab = Lab(stream("tiktok"))
    state = await lab.router.set_enabled("tiktok", True)
    assert state.enabled and lab.relays.of("tiktok").enabled
    assert lab.kinds() == [("state", "tiktok")]
    await lab.router.set_enabled("tiktok", True)  # the same position: no news
    assert lab.kinds() == []
    state = await lab.router.toggle("tiktok")
    assert not state.enabled and lab.relays.of("tiktok").calls == [False, True, True, False]
    assert lab.kinds() == [("state", "tiktok")]
    with pytest.raises(UnknownStreamError, match="unknown stream 'nope'"):
        await lab.router.set_enabled("nope", True)


async def test_a_switch_back_is_set_and_the_next_command_cancels_it() -> None:
    lab = Lab(stream("tiktok"), stream("youtube"))
    state = await lab.router.set_enabled("tiktok", True, revert_after_s=60)
    (timer,) = lab.clock.pending("tiktok")
    assert (timer.enabled, timer.switch_back) == (False, True)
    assert state.next_change_to == "off" and state.next_change_at == timer.due.isoformat()
    await lab.router.set_enabled("youtube", True)  # another stream's command leaves it
    assert lab.clock.pending("tiktok") == [timer]
    lab.kinds()
    await lab.router.set_enabled("tiktok", True)  # same position, but the timer went
    assert lab.clock.pending("tiktok") == []
    assert lab.kinds() == [("state", "tiktok")]


async def test_timers_switch_through_the_routers_callback_and_leave_switch_backs() -> None:
    lab = Lab(stream("tiktok"))
    await lab.router.set_enabled("tiktok", True, revert_after_s=600)
    switch_back = lab.clock.pending("tiktok")[0]
    later = lab.router.add_timer("tiktok", False, lab.clock.now + timedelta(minutes=5))
    assert lab.router.timers("tiktok") == [later, switch_back]
    lab.kinds()
    await lab.clock.fire(later)  # as APScheduler: Clock -> Router.switch
    assert not lab.relays.of("tiktok").enabled
    assert lab.router.timers("tiktok") == [switch_back]  # a timer is not a command
    assert lab.kinds() == [("state", "tiktok")]
    await lab.clock.fire(switch_back)  # off already: the same position, no news
    assert not lab.relays.of("tiktok").enabled and lab.router.timers("tiktok") == []
    assert lab.kinds() == []


async def test_cancelling_timers_is_news_only_when_one_went() -> None:
    lab = Lab(stream("tiktok"))
    first = lab.router.add_timer("tiktok", True, lab.clock.now + timedelta(hours=1))
    second = lab.router.add_timer("tiktok", False, lab.clock.now + timedelta(hours=2))
    lab.kinds()
    assert lab.router.cancel_timers("tiktok", "no-such-timer") == []
    assert lab.kinds() == []
    assert lab.router.cancel_timers("tiktok", first.id) == [first]
    assert lab.router.cancel_timers("tiktok") == [second]
    assert lab.kinds() == [("state", "tiktok"), ("state", "tiktok")]
    with pytest.raises(UnknownStreamError):
        lab.router.add_timer("nope", True, lab.clock.now)


async def test_a_timer_for_a_stream_removed_meanwhile_does_nothing() -> None:
    lab = Lab(stream("tiktok"))
    await lab.router.switch("gone", True, "schedule 1")  # no error, no event
    assert lab.kinds() == []


async def test_relay_news_and_the_ingest_become_events() -> None:
    lab = Lab(stream("tiktok"))
    lab.relays.of("tiktok").become(Status.LIVE)
    lab.relays.of("tiktok").stats(2500.0)
    lab.source.set_live(True)
    assert lab.kinds() == [("state", "tiktok"), ("stats", "tiktok"), ("ingest", None)]
    state = lab.router.stream_state("tiktok")
    assert (state.status, state.bitrate_kbps) == ("live", 2500.0)
    assert lab.router.ingest_state().live
    versions = [lab.router.stream_state("tiktok").version]
    lab.relays.of("tiktok").stats(2400.0)
    versions.append(lab.router.stream_state("tiktok").version)
    assert versions[1] > versions[0]  # every event is a newer version


async def test_the_key_is_masked_in_what_the_router_tells() -> None:
    lab = Lab(stream("tiktok"))
    relay = lab.relays.of("tiktok")
    relay.last_error = f"refused rtmp://127.0.0.1:9/app/tiktok-{CANARY_KEY}"
    relay.error_detail = f"[rtmp] tiktok-{CANARY_KEY}: 403"
    state = lab.router.stream_state("tiktok")
    assert CANARY_KEY not in repr(state)
    assert state.key_set and state.url.startswith("rtmp://127.0.0.1:9/app")


async def test_a_reload_applies_its_plan_and_keeps_switch_positions() -> None:
    lab = Lab(stream("tiktok"), stream("youtube"), stream("twitch"))
    await lab.router.set_enabled("tiktok", True)
    await lab.router.set_enabled("twitch", True)
    lab.router.add_timer("youtube", True, lab.clock.now + timedelta(hours=1))
    seen = lab.router.stream_state("tiktok").version
    old_tiktok, old_twitch = lab.relays.of("tiktok"), lab.relays.of("twitch")
    lab.kinds()
    plan = ReloadPlan(
        added=[stream("facebook", enabled=True)],
        removed=["youtube"],
        changed=[stream("tiktok", key="new-key-0123456789")],
        renamed=[stream("twitch", name="Twitch DE")],
        restart_required=[],
    )
    await lab.router.reconcile(plan, ["facebook", "tiktok", "twitch"])
    assert lab.router.stream_ids == ["facebook", "tiktok", "twitch"]
    assert lab.kinds() == [("config", None)]
    assert lab.clock.pending("youtube") == [] and lab.relays.of("youtube").disposed
    new_tiktok = lab.relays.of("tiktok")
    assert old_tiktok.disposed and new_tiktok is not old_tiktok and new_tiktok.enabled
    assert lab.relays.of("twitch") is old_twitch and not old_twitch.disposed
    assert lab.router.stream_state("twitch").name == "Twitch DE"
    assert lab.router.desired() == {"facebook": True, "tiktok": True, "twitch": True}
    with pytest.raises(StaleVersionError, match="changed by someone else"):
        lab.router.check_version("tiktok", seen)
    lab.router.check_version("tiktok", lab.router.stream_state("tiktok").version)


async def test_another_ingest_reader_makes_every_relay_again_as_it_was() -> None:
    lab = Lab(stream("tiktok"), stream("youtube"))
    await lab.router.set_enabled("youtube", True)
    old = list(lab.relays.made)
    other = FakeSource(live=True)
    await lab.router.replace_engine(lab.relays, other, "direct")
    assert all(r.disposed for r in old) and lab.source.listeners == []
    assert [(r.stream.id, r.enabled) for r in lab.relays.made[2:]] == [
        ("tiktok", False),
        ("youtube", True),
    ]
    assert lab.router.ingest_state().mode == "direct" and lab.router.ingest_state().live
    await lab.router.stop()
    assert all(r.closed for r in lab.relays.made)


async def test_the_hooks_reach_the_ingest_reader() -> None:
    lab = Lab(stream("tiktok"))
    lab.router.notify_ingest_publishing()
    lab.router.notify_ingest_stopped()
    assert lab.source.hooks == ["publisher_started", "publisher_stopped"]


async def test_the_state_file_follows_the_routers_events(tmp_path: Path) -> None:
    lab = Lab(stream("tiktok"), stream("youtube"))
    file = StateFile(tmp_path / "state.json", now=lambda: lab.clock.now)
    persistence = Persistence(file, lab.router.desired, lab.clock.pending)
    lab.router.add_listener(lambda _: persistence.changed())
    await lab.router.set_enabled("tiktok", True, revert_after_s=300)
    saved = load_state(file.path)
    assert saved.streams == {"tiktok": True, "youtube": False}
    assert [(t.stream_id, t.enabled, t.switch_back) for t in saved.timers] == [
        ("tiktok", False, True)
    ]
    stamp = file.path.stat().st_mtime_ns
    lab.relays.of("tiktok").stats(1000.0)  # figures only: nothing to write
    assert file.path.stat().st_mtime_ns == stamp
    await lab.clock.fire(lab.clock.pending("tiktok")[0])
    saved = load_state(file.path)
    assert saved.streams["tiktok"] is False and saved.timers == []
