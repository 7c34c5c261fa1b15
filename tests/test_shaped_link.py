"""Issue 25: a slow link to one platform. The lab (tests/shaped_link.py,
tests/frame_counter.py, tests/shaped_run.py) shapes the links to two platforms
(1 and 2.2 Mbit/s) of a ~2.5 Mbit/s stream for 3 minutes, beside a platform on
loopback, and the run must meet the issue's done-when (tests/shaped_summary.py):
each slow platform's delay under the destination's bound plus one keyframe
interval, no reconnect, `congested` with delay_ms and dropped_share within 5 s,
`live` and under 1 s of delay once the shaping is gone; the good one untouched.
About 4 minutes; the pure parts are checked first, as plain values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqttrelay.config import StreamConfig

from .frame_counter import (
    BITS,
    CounterReader,
    Picture,
    counter_filter,
    decode_row,
    delay_s,
    encode_row,
    publisher_argv,
)
from .shaped_link import pick_block, tbf_argv
from .shaped_run import Destination, Plan, Run, Sample, run_shaped
from .shaped_summary import problems, summary
from .sound_log import largest_gap

DEFAULT_BOUND_S = 2.0


def configured_bound() -> float:
    """streams[].max_delay_s as the service applies it when the config leaves it
    out (the lab's config does, so it loads on engines without the key)."""
    found = StreamConfig.model_fields.get("max_delay_s")
    default = found.default if found is not None else None
    return float(default) if isinstance(default, int | float) else DEFAULT_BOUND_S


def test_counter_rows_read_back_and_damaged_rows_are_refused() -> None:
    for n in (0, 1, 59, 60, 4095, 5400, 2**20 - 1):
        assert decode_row(encode_row(n)) == n
    row = bytearray(encode_row(1234))
    row[3] = 255 - row[3]  # one block read wrong
    assert decode_row(bytes(row)) is None
    assert decode_row(encode_row(7)[:-1]) is None
    soft = bytes(200 if v > 128 else 60 for v in encode_row(999))  # compression's blur
    assert decode_row(soft) == 999


def test_publisher_draws_every_block_and_keeps_the_keyframe_interval() -> None:
    p = Picture()
    chain = counter_filter(p)
    assert chain.count(":color=white:t=fill") == BITS
    assert chain.count(":color=black:t=fill") == BITS
    argv = publisher_argv("ffmpeg", "rtmp://127.0.0.1:1/live/stream", p)
    assert argv[argv.index("-g") + 1] == "60" and argv[argv.index("-sc_threshold") + 1] == "0"
    assert argv[argv.index("-maxrate") + 1] == "2300k"
    with pytest.raises(ValueError, match="too small"):
        counter_filter(Picture(width=320, height=240))


def test_delay_is_the_age_of_the_viewers_picture() -> None:
    ingest, viewer = CounterReader("ingest"), CounterReader("viewer")
    for n in range(100):
        ingest._note(encode_row(n), 10.0 + n / 30)
    viewer._note(encode_row(40), 13.0)
    assert delay_s(ingest, viewer, 13.0, 30) == pytest.approx(13.0 - (10.0 + 40 / 30))
    # nothing new arrives: the picture gets older
    assert delay_s(ingest, viewer, 15.0, 30) == pytest.approx(15.0 - (10.0 + 40 / 30))
    del ingest.seen[40]  # missed at the ingest: placed from its neighbours
    assert delay_s(ingest, viewer, 13.0, 30) == pytest.approx(13.0 - (10.0 + 40 / 30))


def test_the_longest_stretch_without_sound() -> None:
    assert largest_gap([1.0, 1.1, 1.3, 2.5, 2.6], 1.0, 3.0) == pytest.approx(1.2)
    assert largest_gap([0.5, 2.0], 1.0, 4.0) == pytest.approx(2.0)  # to the end too
    assert largest_gap([5.0], 1.0, 4.0) is None


def test_address_block_and_shaping_command() -> None:
    assert pick_block(4242, set()) == 142
    assert pick_block(4242, {142, 143}) == 144
    assert pick_block(99, {199}) == 100
    assert tbf_argv("sl1d1", 1000) == [
        "tc", "qdisc", "replace", "dev", "sl1d1", "root", "tbf", "rate", "1000kbit",
        "burst", "15000", "latency", "100ms",
    ]  # fmt: skip


def _synthetic(
    delay: float, status: str, share: float | None, same_id: bool = True, silent_s: float = 0.3
) -> Run:
    plan = Plan(rates_kbit=(1000,), shaped_s=20, recover_s=5, warm_s=2)
    dests = [Destination("good", None, "g"), Destination("slow1000k", 1000, "s")]
    run = Run(plan, dests, {d.id: [] for d in dests})
    run.sound_gap_s = {"good": 0.2, "slow1000k": silent_s}
    for i in range(-4, 50):
        t = i / 2
        shaped = 0 <= t < 20
        for d in dests:
            slow = d.rate_kbit is not None and shaped
            pid = ("7" if same_id or t < 10 else "8") if d.rate_kbit else "3"
            run.samples[d.id].append(
                Sample(t, delay if slow else 0.1, pid,
                       status if slow else "live", 1500.0 if slow else 0.0,
                       share if slow else 0.0, 0)
            )  # fmt: skip
    return run


def test_problems_name_each_missed_criterion() -> None:
    assert problems(_synthetic(2.5, "congested", 0.6), 2.0) == []
    found = problems(_synthetic(9.0, "live", None, same_id=False, silent_s=1.7), 2.0)
    assert any("slow1000k: no sound at the platform for 1.7 s" in p for p in found)
    assert any("delay over 4.0 s" in p for p in found)
    assert any("not congested within 5 s" in p for p in found)
    assert any("dropped_share never above 0" in p for p in found)
    assert any("1 reconnects" in p for p in found)
    assert summary(_synthetic(2.5, "congested", 0.6))["destinations"][1]["reconnects"] == 0


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.alone
async def test_a_slow_platform_keeps_a_bounded_delay_without_reconnecting(
    tmp_path: Path,
) -> None:
    bound = configured_bound()
    run = await run_shaped(tmp_path / "lab", Plan())
    (tmp_path / "timeline.json").write_text(json.dumps(run.to_json()))
    figures = summary(run)
    # a damaged frame is refused by its check; a few (a viewer joining mid-group) are no harm
    assert all(v < 30 for v in figures["bad_frames"].values()), figures["bad_frames"]
    missed = problems(run, bound)
    assert not missed, "\n".join([*missed, json.dumps(figures["destinations"], default=str)])
