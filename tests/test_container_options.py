"""The container's options into config.yaml, as plain values: the first start,
the Supervisor's MQTT service, the add-on's ingress settings, destinations
listed in the options beside those added on the page, and bad options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from mqttrelay.config import parse_config
from mqttrelay.config.edit import add_stream
from mqttrelay.container.options import (
    SUPERVISOR_PROXY,
    MqttService,
    OptionsError,
    Settled,
    first_config,
    mqtt_from_service,
    options_from_env,
    parse_options,
    settle_config,
)

SERVICE = MqttService("core-mosquitto", 1883, "addons", "svc-pass-123", False)
FIRST = first_config(state_file="/data/state.json", obs_key="obs-key-xyz-0123", token="t" * 24)
# what a first start wrote before the built-in ingest was the default (0.1.0)
NGINX_FIRST = """\
state_file: "/data/state.json"
ingest:
  manage: true
  url: rtmp://0.0.0.0:1935/live/stream
  publish_key: "short-key"
api:
  host: 0.0.0.0
  port: 8088
  token: "tttttttttttttttttttttttt"
mqtt:
  enabled: false
streams: []
"""


def settle(
    text: str,
    raw: Mapping[str, Any],
    owned: list[str] | None = None,
    *,
    service: MqttService | None = SERVICE,
    addon: bool = True,
    timezone: str | None = "Europe/Oslo",
) -> Settled:
    return settle_config(
        text,
        parse_options(dict(raw), "add-on options"),
        service=service,
        addon=addon,
        timezone=timezone,
        owned=owned or [],
    )


def test_first_start_in_the_add_on_is_a_valid_config_with_ingress_and_the_service() -> None:
    settled = settle(FIRST, {})
    config = parse_config(settled.text)
    # mqttrelay's own ingest on every address: no nginx, no tap (docs/ingest.md)
    assert config.ingest.listen == "0.0.0.0:1935" and not config.ingest.manage
    assert config.ingest.url == "rtmp://0.0.0.0:1935/live/stream"
    assert config.ingest.publish_key == "obs-key-xyz-0123"
    assert (config.api.host, config.api.port) == ("0.0.0.0", 8088)
    assert config.api.ingress_proxy == SUPERVISOR_PROXY and config.api.token == "t" * 24
    assert config.mqtt.enabled and config.mqtt.host == "core-mosquitto"
    assert (config.mqtt.username, config.mqtt.password) == ("addons", "svc-pass-123")
    assert config.timezone == "Europe/Oslo"
    assert "# Made by the mqttrelay container" in settled.text
    assert any("Supervisor's MQTT service" in note for note in settled.notes)


def test_docker_sets_no_ingress_and_keeps_mqtt_off_without_a_host() -> None:
    settled = settle(FIRST, {}, service=None, addon=False, timezone=None)
    config = parse_config(settled.text)
    assert config.api.ingress_proxy is None and not config.mqtt.enabled
    env = options_from_env({"MQTT_HOST": "broker.lan", "MQTT_PORT": "1884", "LOG_LEVEL": "DEBUG"})
    config = parse_config(settle(FIRST, env.model_dump(), service=None, addon=False).text)
    assert (config.mqtt.host, config.mqtt.port) == ("broker.lan", 1884)
    assert env.log_level == "debug"


def test_options_override_the_service_and_set_the_obs_key_and_token() -> None:
    raw = {
        "mqtt_host": "10.0.0.5",
        "mqtt_username": "me",
        "mqtt_password": "pw",
        "obs_key": "mine-obs-key-0123",
        "page_token": "p" * 30,
    }
    config = parse_config(settle(FIRST, raw).text)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == ("10.0.0.5", 1883, "me")
    assert config.ingest.publish_key == "mine-obs-key-0123" and config.api.token == "p" * 30


def test_an_install_from_before_keeps_its_nginx_ingest_and_short_key() -> None:
    settled = settle(NGINX_FIRST, {"obs_key": "my-obs-key"})
    config = parse_config(settled.text)
    assert config.ingest.manage and config.ingest.listen is None
    assert config.ingest.publish_key == "my-obs-key"
    assert not any("ingest" in note for note in settled.notes)


def test_ingest_listen_turns_the_built_in_ingest_on() -> None:
    raw = {"ingest_listen": "0.0.0.0:1935", "obs_key": "long-enough-key-0123"}
    settled = settle(NGINX_FIRST, raw)
    config = parse_config(settled.text)
    assert config.ingest.listen == "0.0.0.0:1935" and not config.ingest.manage
    assert config.ingest.url == "rtmp://0.0.0.0:1935/live/stream"  # OBS's settings stay
    assert "ingest: the built-in one on 0.0.0.0:1935, from the options" in settled.notes
    # plain Docker maps ports as it likes: any port, from INGEST_LISTEN
    env = options_from_env({"INGEST_LISTEN": "0.0.0.0:1936", "OBS_KEY": "long-enough-key-0123"})
    docker = parse_config(settle(NGINX_FIRST, env.model_dump(), addon=False).text)
    assert docker.ingest.listen == "0.0.0.0:1936"


@pytest.mark.parametrize(
    ("text", "raw", "expected"),
    [
        (NGINX_FIRST, {"ingest_listen": "0.0.0.0:1936"}, "ingest_listen: the add-on's ingest port"),
        (NGINX_FIRST, {"ingest_listen": "0.0.0.0:1935", "obs_key": "short"}, "obs_key is 5"),
        (FIRST, {"obs_key": "short key here!!"}, "obs_key is 16 characters; mqttrelay's built-in"),
    ],
)
def test_what_the_built_in_ingest_refuses_is_one_line_naming_the_option(
    text: str, raw: dict[str, str], expected: str
) -> None:
    with pytest.raises(OptionsError) as caught:
        settle(text, raw)
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(expected)


def test_listed_destinations_are_kept_in_step_and_page_ones_left_alone() -> None:
    listed = {
        "destinations": [
            {
                "id": "youtube",
                "name": "YouTube",
                "url": "rtmp://a.rtmp.youtube.com/live2",
                "key": "k1-youtube",
            },
            {"id": "twitch", "url": "rtmp://live.twitch.tv/app", "key": ""},
        ]
    }
    first = settle(FIRST, listed)
    config = parse_config(first.text)
    assert [s.id for s in config.streams] == ["youtube", "twitch"]
    assert config.streams[0].key == "k1-youtube" and config.streams[1].key is None
    assert first.owned == ["youtube", "twitch"]
    # a destination added on the page, and a comment of the user's
    text = add_stream(
        first.text, {"id": "tiktok", "url": "rtmp://push.tiktok.example/live", "key": "t-tiktok1"}
    )
    text = text.replace("streams:", "# my note\nstreams:")
    changed = {
        "destinations": [
            {"id": "youtube", "url": "rtmp://b.rtmp.youtube.com/live2", "key": "k2-youtube"}
        ]
    }
    again = settle(text, changed, owned=first.owned)
    config = parse_config(again.text)
    assert [s.id for s in config.streams] == ["youtube", "tiktok"]
    assert config.streams[0].url == "rtmp://b.rtmp.youtube.com/live2"
    assert config.streams[0].key == "k2-youtube" and config.streams[0].name == "youtube"
    assert "# my note" in again.text and again.owned == ["youtube"]
    assert "removed destination twitch: no longer in the options" in again.notes


def test_a_destination_a_schedule_names_is_kept() -> None:
    listed = {"destinations": [{"id": "yt", "url": "rtmp://a.example/live"}]}
    first = settle(FIRST, listed)
    text = first.text + "schedules:\n  - stream: yt\n    cron: '0 20 * * *'\n    action: 'on'\n"
    again = settle(text, {}, owned=first.owned)
    assert [s.id for s in parse_config(again.text).streams] == ["yt"]
    assert again.owned == ["yt"] and any("schedule" in n for n in again.notes)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"destinations": [{"id": "Bad Id", "url": "rtmp://a/b"}]}, "destinations[0].id"),
        (
            {"destinations": [{"id": "a", "url": "rtmp://x/y"}, {"id": "a", "url": "rtmp://x/z"}]},
            "listed twice: a",
        ),
        ({"mqtt_port": 70000}, "mqtt_port"),
        ({"log_level": "loud"}, "log_level"),
        ({"ingest_listen": "1935"}, "ingest_listen"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_options_are_one_clear_line_each(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(OptionsError) as caught:
        parse_options(raw, "add-on options")
    assert len(caught.value.problems) == 1
    assert expected in caught.value.problems[0]
    assert caught.value.problems[0].startswith("add-on options: ")


def test_a_bad_destination_is_named_as_an_option() -> None:
    for entry, field in (
        ({"id": "x", "url": "http://not-rtmp/"}, "destinations[0].url"),
        ({"id": "x", "url": "rtmp://a.example/live", "key": "two words"}, "destinations[0].key"),
    ):
        with pytest.raises(OptionsError) as caught:
            parse_options({"destinations": [entry]}, "add-on options")
        assert caught.value.problems[0].startswith(f"add-on options: {field}: ")


def test_first_start_values_are_quoted_whatever_they_hold() -> None:
    key = "-0123456789abcdef"  # a leading '-' and digits
    odd = first_config(state_file="/data/state.json", obs_key=key, token="-x: #y" + "z" * 20)
    config = parse_config(odd)
    assert config.ingest.publish_key == key and config.api.token == "-x: #y" + "z" * 20


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"data": {}}, {"data": {"host": ""}}, {"data": {"host": "h", "port": "x"}}, []],
)
def test_a_bad_service_answer_is_a_clear_error(payload: object) -> None:
    with pytest.raises(ValueError, match="MQTT service"):
        mqtt_from_service(payload)


def test_the_service_answer() -> None:
    got = mqtt_from_service(
        {
            "result": "ok",
            "data": {
                "host": "core-mosquitto",
                "port": 1883,
                "ssl": True,
                "username": "addons",
                "password": "x",
            },
        }
    )
    assert got == MqttService("core-mosquitto", 1883, "addons", "x", True)
