"""The Home Assistant blueprints are well-formed and point at the right things."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

FOLDER = Path(__file__).resolve().parent.parent / "ha_blueprints"


class InputTag(str):
    pass


class BlueprintLoader(yaml.SafeLoader):
    pass


def _input(loader: yaml.SafeLoader, node: yaml.Node) -> InputTag:
    assert isinstance(node, yaml.ScalarNode)
    return InputTag(loader.construct_scalar(node))


BlueprintLoader.add_constructor("!input", _input)


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=BlueprintLoader)  # a SafeLoader subclass
    assert isinstance(data, dict)
    return data


def inputs_used(node: Any) -> set[str]:
    if isinstance(node, InputTag):
        return {str(node)}
    if isinstance(node, dict):
        return set().union(*(inputs_used(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(inputs_used(v) for v in node)) if node else set()
    return set()


@pytest.mark.parametrize(
    "name",
    ["toggle_destination", "live_window", "notify_failed", "notify_standby", "everywhere_buttons"],
)
def test_blueprint(name: str) -> None:
    data = load(FOLDER / f"{name}.yaml")
    meta = data["blueprint"]
    assert meta["domain"] == "automation"
    assert meta["source_url"].endswith(f"ha_blueprints/{name}.yaml")
    assert meta["homeassistant"]["min_version"] >= "2024.10.0"
    declared = set(meta["input"])
    body = {k: v for k, v in data.items() if k != "blueprint"}
    assert inputs_used(body) == declared  # every input used, none undeclared
    assert "triggers" in data and "actions" in data
    for spec in meta["input"].values():
        entity = spec.get("selector", {}).get("entity")
        if entity and name != "everywhere_buttons":
            assert entity["filter"][0]["integration"] == "mqtt"
