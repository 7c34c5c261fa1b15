from __future__ import annotations

from typing import Any

from mqttrelay.config import Config
from mqttrelay.control.reload import plan_reload


def config(streams: list[dict[str, Any]], **extra: Any) -> Config:
    return Config.model_validate({"streams": streams, **extra})


YT = {"id": "yt", "url": "rtmp://a.example/live2", "key": "K1-yt-key"}
FB = {"id": "fb", "url": "rtmps://b.example:443/rtmp/", "key": "K2-fb-key"}
TT = {"id": "tt", "url": "rtmp://c.example/app", "key": "K3-tt-key"}


def test_plan_names_each_kind_of_change() -> None:
    old = config([YT, FB, TT])
    new = config(
        [
            {**YT, "name": "YouTube main"},  # only the name: the relay keeps running
            {**FB, "key": "K2-fb-key-new"},  # a new key: a new relay
            {"id": "kick", "url": "rtmp://d.example/app", "key": "K4-kick-key"},
        ],
        mqtt={"port": 1884},
    )
    plan = plan_reload(old, new)
    result = plan.result()
    assert result.added == ["kick"]
    assert result.removed == ["tt"]
    assert result.changed == ["fb"]
    assert result.renamed == ["yt"]
    assert result.restart_required == ["mqtt"]
    assert plan.renamed[0].name == "YouTube main"
    assert "restart needed for mqtt" in result.summary()
    assert "K2-fb-key" not in result.summary()


def test_same_config_changes_nothing() -> None:
    result = plan_reload(config([YT, FB]), config([YT, FB])).result()
    assert (result.added, result.removed, result.changed, result.renamed) == ([], [], [], [])
    assert result.restart_required == []
    assert result.summary() == "added none, removed none, restarted none, renamed none"


def test_a_new_standby_section_needs_a_restart() -> None:
    old = config([YT])
    new = Config.model_validate(old.model_dump() | {"standby": {"max_s": 60}})
    assert plan_reload(old, new).result().restart_required == ["standby"]
