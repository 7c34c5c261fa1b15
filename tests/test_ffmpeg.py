from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mqttrelay.ffmpeg import (
    BitrateMeter,
    ProgressParser,
    bitrate_kbps,
    build_relay_argv,
    build_tap_argv,
)
from mqttrelay.lib.redact import display_url, mask, mask_url

INGEST = "rtmp://127.0.0.1/live/s"


def test_cached_relay_argv_reads_stdin_and_copies() -> None:
    argv = build_relay_argv("ffmpeg", "rtmp://a.example:1935/app/KEY", "cached", INGEST)
    assert argv[0] == "ffmpeg"
    assert argv[argv.index("-i") + 1] == "pipe:0"
    assert argv[argv.index("-i") - 2 : argv.index("-i")] == ["-f", "flv"]
    assert argv[argv.index("-c") + 1] == "copy"
    assert argv[argv.index("-progress") + 1] == "pipe:1"
    assert argv[-1] == "rtmp://a.example:1935/app/KEY"
    assert argv[-3:-1] == ["-tcp_nodelay", "1"]
    assert "-fpsprobesize" in argv and argv[argv.index("-analyzeduration") + 1] == "5000000"
    # the sound goes on while a slow link's relay skips pictures
    assert argv[argv.index("-max_interleave_delta") + 1] == "200000"


def test_direct_relay_argv_pulls_ingest_with_read_timeout() -> None:
    argv = build_relay_argv("/usr/bin/ffmpeg", "rtmps://b/rtmp/K", "direct", INGEST)
    assert argv[argv.index("-i") + 1] == INGEST
    assert "-rw_timeout" in argv and "-timeout" not in argv
    assert "-tcp_nodelay" not in argv  # not passed to TLS
    assert argv[argv.index("-i") - 2 : argv.index("-i")] == ["-f", "live_flv"]
    assert argv[-3:] == ["-flvflags", "no_duration_filesize", "rtmps://b/rtmp/K"]


def test_srt_output_is_mpegts() -> None:
    argv = build_relay_argv("ffmpeg", "srt://h:9000?streamid=x", "cached", INGEST)
    assert argv[-3:] == ["-f", "mpegts", "srt://h:9000?streamid=x"]


def test_tap_argv() -> None:
    argv = build_tap_argv("ffmpeg", "rtmp://127.0.0.1:1935/live/stream")
    assert argv[-1] == "pipe:1"
    assert argv[argv.index("-f", argv.index("-i")) + 1] == "flv"
    assert "-nostdin" in argv
    # live_flv mends the timestamp jump of a new OBS session; no read timeout,
    # so the tap can wait at the ingest for OBS as long as it takes
    assert argv[argv.index("-i") - 2 : argv.index("-i")] == ["-f", "live_flv"]
    assert "-rw_timeout" not in argv


def test_mask_url_and_display() -> None:
    assert mask_url("rtmps://live-api-s.facebook.com:443/rtmp/FB-123") == (
        "rtmps://live-api-s.facebook.com:443/rtmp/****"
    )
    assert mask_url("srt://h:9000?streamid=abc") == "srt://h:9000?****"
    assert mask_url("rtmp://u:pw@h/app/k?x=1") == "rtmp://****@h/app/****?****"
    assert display_url("rtmp://h/app", "K") == "rtmp://h/app/****"
    assert display_url("rtmp://h/app/", "K") == "rtmp://h/app/****"


def test_mask_ffmpeg_error_line() -> None:
    line = (
        "[rtmp @ 0x5] Cannot open connection tcp://h:1?tcp_nodelay=1\nrtmp://h/app/SECRET: refused"
    )
    masked = mask(line, ["SECRET"])
    assert "SECRET" not in masked
    assert "rtmp://h/app/****: refused" in masked


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=8, max_size=30))
def test_mask_hides_any_key(key: str) -> None:
    text = f"Error: rtmp://host/app/{key} and playpath {key}"
    assert key not in mask(text, [key])


def test_a_short_secret_is_masked_as_a_word_never_inside_one() -> None:
    masked = mask("mqttrelay: password=a, user a; all relays", ["a"])
    assert masked == "mqttrelay: password=****, user ****; all relays"


def test_progress_blocks() -> None:
    parser = ProgressParser()
    lines = ["frame=10", "total_size=N/A", "out_time_us=400000", "progress=continue"]
    results = [parser.feed_line(line) for line in lines]
    assert results[:3] == [None, None, None]
    first = results[3]
    assert first is not None and first.total_size is None and first.out_time_us == 400000
    for line in ["total_size=12345", "speed=1.01x"]:
        assert parser.feed_line(line) is None
    last = parser.feed_line("progress=end\n")
    assert last is not None and last.total_size == 12345 and last.ended and last.speed == 1.01
    assert parser.feed_line("garbage without equals") is None


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_progress_in_pieces_equals_progress_by_line(cuts: list[int]) -> None:
    text = "total_size=100\nprogress=continue\nspeed=1x\ntotal_size=250\nprogress=end\n"
    by_line = ProgressParser()
    whole = [p for line in text.splitlines() if (p := by_line.feed_line(line))]
    parser = ProgressParser()
    pieces, last = [], 0
    for cut in sorted(c % (len(text) + 1) for c in cuts):
        pieces.append(text[last:cut])
        last = cut
    pieces.append(text[last:])
    got = [p for piece in pieces for p in parser.feed(piece)]
    assert got == whole
    assert [(p.total_size, p.ended) for p in got] == [(100, False), (250, True)]


def test_bitrate() -> None:
    assert bitrate_kbps(0, 125_000, 1.0) == 1000.0
    assert bitrate_kbps(100, 50, 1.0) == 0.0
    assert bitrate_kbps(0, 100, 0) == 0.0


def test_bitrate_meter_ignores_the_first_burst_and_slides() -> None:
    meter = BitrateMeter(window_s=2.0)
    assert meter.add(0.0, 500_000) == 0.0  # the cached group, all at once
    sizes = {n: 500_000 + n * 62_500 for n in range(1, 10)}  # 1000 kbit/s after that
    rates = [meter.add(n * 0.5, size) for n, size in sizes.items()]
    assert rates == [0.0] + [1000.0] * 8  # the first second is still the burst
    stalled = meter.add(5.0, sizes[9])  # nothing sent in the last half second
    assert 700 <= stalled < 1000
    for n in range(11, 16):
        meter.add(n * 0.5, sizes[9])
    assert meter.add(8.0, sizes[9]) == 0.0  # a whole window without output
