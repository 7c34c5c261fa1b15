"""Destinations and settings managed through the API, kept in config.yaml
(real service parts in this event loop, real files, real ffmpeg for the check)."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mqttrelay.app import Service
from mqttrelay.config import Config, load_config

from .kit import CANARY_KEY, api_client, assert_no_canary, write_offline_config

NEW_KEY = f"new-{CANARY_KEY}"


def commented_config(tmp_path: Path) -> Path:
    """An offline config with comments and a ${VAR} key, as a user writes one."""
    path = write_offline_config(tmp_path, ["facebook"])
    raw = yaml.safe_load(path.read_text())
    raw["streams"].append({"id": "twitch", "url": "rtmp://127.0.0.1:1/app", "key": "${TWITCH_KEY}"})
    text = "# my studio\n" + yaml.safe_dump(raw, sort_keys=False).replace(
        "streams:", "# the platforms\nstreams:"
    )
    path.write_text(text)
    return path


def with_schedule(path: Path) -> Path:
    """Twitch switched on every evening by a schedule in the file."""
    raw = yaml.safe_load(path.read_text())
    raw["schedules"] = [{"stream": "twitch", "action": "on", "cron": "0 20 * * *"}]
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(autouse=True)
def twitch_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCH_KEY", f"twitch-{CANARY_KEY}")


async def test_add_change_delete_a_destination_in_the_file(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    async with api_client(path, services) as (client, router):
        body = {"id": "youtube", "name": "YouTube", "url": "rtmp://127.0.0.1:1/live2",
                "key": f"yt-{CANARY_KEY}"}  # fmt: skip
        r = await client.post("/api/streams", json=body)
        assert r.status_code == 201, r.text
        assert_no_canary(r)
        assert r.json()["key_set"] is True and r.json()["id"] == "youtube"
        assert "youtube" in router.stream_ids
        text = path.read_text()
        assert "# my studio" in text and "# the platforms" in text  # comments kept
        assert "${TWITCH_KEY}" in text  # references stay references
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds keys
        assert load_config(path).stream("youtube") is not None

        r = await client.post("/api/streams", json=body)
        assert r.status_code == 409

        before = router._relays["twitch"]
        r = await client.patch("/api/streams/twitch", json={"name": "Twitch main"})
        assert r.status_code == 200 and r.json()["name"] == "Twitch main"
        assert router._relays["twitch"] is before
        assert "${TWITCH_KEY}" in path.read_text()

        r = await client.patch("/api/streams/twitch", json={"key": NEW_KEY})
        assert r.status_code == 200
        assert_no_canary(r)
        assert router._relays["twitch"] is not before
        assert load_config(path).stream("twitch").key == NEW_KEY  # type: ignore[union-attr]

        r = await client.delete("/api/streams/youtube")
        assert r.status_code == 204
        assert "youtube" not in router.stream_ids
        assert load_config(path).stream("youtube") is None
        assert (await client.delete("/api/streams/youtube")).status_code == 404
        assert (await client.patch("/api/streams/nope", json={"name": "x"})).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "Bad Id", "url": "rtmp://127.0.0.1/x"}, "id"),
        ({"id": "all", "url": "rtmp://127.0.0.1/x"}, "id"),
        ({"id": "ok", "url": "file:///etc/passwd"}, "url"),
        ({"id": "ok", "url": "-y rtmp://127.0.0.1/x"}, "url"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "key": "-f"}, "key"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "key": "a b"}, "key"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "key": "${HOME}"}, "key"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "key": "rtmp://127.0.0.1/x/k"}, "key"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "name": "a\nb"}, "name"),
        ({"id": "ok", "url": "rtmp://127.0.0.1/x", "extra": 1}, "extra"),
    ],
)
async def test_bad_destinations_are_422_naming_the_field_and_change_nothing(
    tmp_path: Path, services: Callable[[Config], Service], body: dict[str, object], field: str
) -> None:
    path = commented_config(tmp_path)
    before = path.read_text()
    async with api_client(path, services) as (client, router):
        r = await client.post("/api/streams", json=body)
        assert r.status_code == 422, r.text
        assert any(d["loc"][-1] == field for d in r.json()["detail"]), r.text
        assert path.read_text() == before
        assert router.stream_ids == ["facebook", "twitch"]


async def test_stale_version_is_409_and_a_fresh_one_applies(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    async with api_client(path, services) as (client, _):
        seen = (await client.get("/api/streams/facebook")).json()["version"]
        first = await client.patch("/api/streams/facebook", json={"name": "A", "version": seen})
        assert first.status_code == 200
        second = await client.patch("/api/streams/facebook", json={"name": "B", "version": seen})
        assert second.status_code == 409
        assert "changed by someone else" in second.json()["detail"]
        fresh = first.json()["version"]
        third = await client.patch("/api/streams/facebook", json={"name": "C", "version": fresh})
        assert third.status_code == 200 and third.json()["name"] == "C"


async def test_delete_drops_timers_and_refuses_while_a_schedule_names_it(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = with_schedule(commented_config(tmp_path))
    async with api_client(path, services) as (client, router):
        timer = await client.post("/api/streams/facebook/timer", json={"action": "on", "in_s": 600})
        assert timer.status_code == 200
        r = await client.delete("/api/streams/twitch")
        assert r.status_code == 409 and "schedules[0]" in r.json()["detail"]
        assert "twitch" in router.stream_ids
        assert (await client.delete("/api/streams/facebook")).status_code == 204
        assert router._clock.pending("facebook") == []


async def test_settings_refuse_what_is_not_ffmpeg_and_keep_the_old_path(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    fake = tmp_path / "bin" / "ffmpeg"  # named ffmpeg, but it is /bin/true
    fake.parent.mkdir()
    shutil.copy("/bin/true", fake)
    real = shutil.which("ffmpeg")
    assert real is not None
    async with api_client(path, services) as (client, _):
        r = await client.get("/api/settings")
        assert r.json() == {"ffmpeg_path": "ffmpeg", "ingest_mode": "cached"}
        for bad, reason in [
            ("/bin/true", "not named ffmpeg"),
            (str(fake), "this is not ffmpeg"),
            ("/nowhere/ffmpeg", "No such file"),
            ("-version", "give the path"),
        ]:
            r = await client.patch("/api/settings", json={"ffmpeg_path": bad})
            assert r.status_code == 422, r.text
            assert reason in r.json()["detail"], r.text
        assert load_config(path).ffmpeg.path == "ffmpeg"
        r = await client.patch("/api/settings", json={"ffmpeg_path": real})
        assert r.status_code == 200 and r.json()["ffmpeg_path"] == real
        assert load_config(path).ffmpeg.path == real
        bad_mode = await client.patch("/api/settings", json={"ingest_mode": "push"})
        assert bad_mode.status_code == 422


async def test_presets_are_valid_destinations(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    async with api_client(path, services) as (client, _):
        presets = (await client.get("/api/presets")).json()
        names = {p["name"] for p in presets}
        for wanted in ["YouTube", "Facebook", "Twitch", "TikTok", "Kick", "Instagram", "X"]:
            assert wanted in names
        for preset in presets:
            if preset["url"]:  # "custom" has none
                body = {"id": f"p-{preset['id']}", "url": preset["url"], "key": "k-123456"}
                r = await client.post("/api/streams", json=body)
                assert r.status_code == 201, (preset, r.text)


async def test_editing_keeps_pending_timers_and_schedules(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = with_schedule(commented_config(tmp_path))
    async with api_client(path, services) as (client, router):
        timer = await client.post("/api/streams/twitch/timer", json={"action": "on", "in_s": 900})
        assert timer.status_code == 200
        r = await client.patch("/api/streams/twitch", json={"key": NEW_KEY, "name": "Twitch 2"})
        assert r.status_code == 200
        assert r.json()["next_change_at"] is not None  # the timer (or the schedule) is still due
        assert [t.id for t in router.timers("twitch")] == [timer.json()["id"]]
        assert load_config(path).schedules[0].stream == "twitch"


async def test_destinations_take_an_output_profile(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["profiles"] = {"small": {"width": 160, "height": 90, "video_bitrate_kbps": 150}}
    path.write_text(yaml.safe_dump(raw))
    async with api_client(path, services) as (client, router):
        body = {"id": "tiktok", "url": "rtmp://127.0.0.1:1/live", "profile": "small"}
        r = await client.post("/api/streams", json=body)
        assert r.status_code == 201 and r.json()["profile"] == "small"
        bad = await client.post("/api/streams", json=body | {"id": "ig", "profile": "nope"})
        assert bad.status_code == 422 and "unknown profile 'nope'" in bad.text
        assert "ig" not in router.stream_ids
        profiles = (await client.get("/api/profiles")).json()
        assert profiles == [
            {"profile": "small", "running": False, "destinations": 0, "pid": None,
             "cpu_percent": 0.0, "speed": None, "dropped_frames": 0, "restarts": 0,
             "last_error": None}
        ]  # fmt: skip
        before = router._relays["tiktok"]
        r = await client.patch("/api/streams/tiktok", json={"profile": None})
        assert r.status_code == 200 and r.json()["profile"] is None
        assert router._relays["tiktok"] is not before  # another feed: another relay
        assert load_config(path).stream("tiktok").profile is None  # type: ignore[union-attr]
        metrics = (await client.get("/metrics")).text
        assert 'mqttrelay_profile_running{profile="small"} 0.0' in metrics


async def test_a_reload_that_adds_a_profile_and_a_stream_on_it(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = commented_config(tmp_path)
    async with api_client(path, services) as (client, router):
        raw = yaml.safe_load(path.read_text())
        raw["profiles"] = {"small": {"width": 160, "height": 90, "video_bitrate_kbps": 150}}
        raw["streams"].append({"id": "ig", "url": "rtmp://127.0.0.1:1/x", "profile": "small"})
        path.write_text(yaml.safe_dump(raw))
        r = await client.post("/api/reload")
        assert r.status_code == 200, r.text
        assert r.json()["added"] == ["ig"] and r.json()["restart_required"] == []
        assert [p.profile for p in router.profiles()] == ["small"]
        assert router.stream_state("ig").profile == "small"
        on = await client.put("/api/streams/ig", json={"enabled": True})
        assert on.status_code == 200  # waits for the ingest like any relay


async def test_the_openapi_document_names_what_add_and_change_answer(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    async with api_client(commented_config(tmp_path), services) as (client, _):
        paths = (await client.get("/openapi.json")).json()["paths"]
    added = paths["/api/streams"]["post"]["responses"]["201"]["content"]["application/json"]
    changed = paths["/api/streams/{stream_id}"]["patch"]["responses"]["200"]["content"]
    assert added["schema"]["$ref"].endswith("/StreamOut")
    assert changed["application/json"]["schema"]["$ref"].endswith("/StreamOut")
