"""Several hosts on one broker, as plain values: announcements and conflicts."""

from __future__ import annotations

from mqttrelay.transports.mqtt.fleet import Fleet, decode_info, encode_info, node_of
from mqttrelay.transports.mqtt.topics import Topics


def test_each_host_has_its_own_availability_and_ingest_topics() -> None:
    a, b = Topics("streamrelay", "studio"), Topics("streamrelay", "attic")
    assert a.availability == "streamrelay/host/studio/status"
    assert a.ingest_status == "streamrelay/host/studio/ingest/status"
    assert a.availability != b.availability and a.host_info != b.host_info
    # the first release's shared topics, kept for single-host setups
    assert a.shared_availability == b.shared_availability == "streamrelay/status"
    assert a.set("all") == "streamrelay/all/set"  # one "stop everything" for the fleet
    assert a.stream_of_set_topic("streamrelay/host/attic/status") is None


def test_announcements_round_trip_and_garbage_is_ignored() -> None:
    info = decode_info(encode_info("i1", ["tiktok", "facebook"]).encode())
    assert info is not None and info.streams == ("facebook", "tiktok")
    for bad in (b"", b"{", b"[]", b'{"instance": 1}', b'{"instance": "x", "streams": [1]}'):
        assert decode_info(bad) is None
    assert node_of("streamrelay/host/attic/info", "streamrelay/host/", "info") == "attic"
    assert node_of("streamrelay/host/a/b/info", "streamrelay/host/", "info") is None


def test_duplicate_stream_ids_and_node_ids_are_reported() -> None:
    fleet = Fleet("studio", "me")
    fleet.seen_info("studio", encode_info("me", ["tiktok"]).encode())
    fleet.seen_info("attic", encode_info("other", ["tiktok", "youtube"]).encode())
    assert fleet.problems(["tiktok"]) == []  # attic's availability not seen: not online
    fleet.seen_status("attic", b"online")
    (dup,) = fleet.problems(["tiktok"])
    assert "stream id 'tiktok' is also on host 'attic'" in dup
    assert fleet.owner_of("youtube") == "attic" and fleet.owner_of("kick") is None
    fleet.seen_status("attic", b"offline")
    assert fleet.problems(["tiktok"]) == [] and fleet.owner_of("youtube") is None
    fleet.seen_info("studio", encode_info("someone-else", ["x"]).encode())
    (same,) = fleet.problems(["tiktok"])
    assert "also uses node_id 'studio'" in same
