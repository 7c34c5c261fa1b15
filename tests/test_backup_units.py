"""hub/backup.py: which backup may stand in (plain values)."""

from __future__ import annotations

from mqttrelay.hub.backup import FeedShape, audio_layout, pairing_problem

# AudioSpecificConfig: AAC LC, 44100 Hz (index 4), 2 channels / 48000 Hz (index 3), 1 channel
STEREO_44K = bytes([0x12, 0x10])
MONO_48K = bytes([0x11, 0x88])


def test_audio_layout_reads_rate_and_channels() -> None:
    assert audio_layout(STEREO_44K) == "44100 Hz 2 ch"
    assert audio_layout(MONO_48K) == "48000 Hz 1 ch"
    assert audio_layout(None) == "none"


def test_same_shape_pairs_and_an_unknown_primary_takes_any() -> None:
    wide = FeedShape(320, 180, 25.0, STEREO_44K)
    assert pairing_problem(wide, FeedShape(320, 180, 25.0, STEREO_44K)) is None
    assert pairing_problem(None, FeedShape(180, 320, 30.0, MONO_48K)) is None


def test_a_different_shape_is_refused_saying_both() -> None:
    wide = FeedShape(320, 180, 25.0, STEREO_44K)
    problem = pairing_problem(wide, FeedShape(180, 320, 25.0, STEREO_44K))
    assert problem is not None
    assert "180x320, 25 fps, audio 44100 Hz 2 ch" in problem
    assert "the primary was 320x180" in problem
    assert pairing_problem(wide, FeedShape(320, 180, 30.0, STEREO_44K)) is not None
    assert pairing_problem(wide, FeedShape(320, 180, 25.0, MONO_48K)) is not None
