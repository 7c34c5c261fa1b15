"""OBS Studio (Debian's obs-studio 29) for tests: a config folder written for
the test (a profile with OBS's default simple output, x264, and a custom RTMP
server; a scene with one colour source), and the command that starts it
streaming, headless under Xvfb. OBS fetches service lists from obsproject.com
at start, so tests run it in a network namespace that reaches only this host."""

from __future__ import annotations

import json
from pathlib import Path

from .support import require_tool

PROFILE = COLLECTION = "mqttrelay"


def obs_files(server: str, key: str, width: int = 640, height: int = 360) -> dict[str, str]:
    """Paths under $XDG_CONFIG_HOME -> contents. Everything not named here is
    OBS's default (simple output mode: x264, CBR, keyframes every 250 frames)."""
    global_ini = f"""[General]
FirstRun=true
LastVersion=486539264
EnableAutoUpdates=false
ConfirmOnExit=false

[Basic]
Profile={PROFILE}
ProfileDir={PROFILE}
SceneCollection={COLLECTION}
SceneCollectionFile={COLLECTION}

[BasicWindow]
SysTrayEnabled=true
WarnBeforeStartingStream=false
WarnBeforeStoppingStream=false
"""
    basic_ini = f"""[General]
Name={PROFILE}

[Video]
BaseCX={width}
BaseCY={height}
OutputCX={width}
OutputCY={height}
FPSType=0
FPSCommon=30

[Output]
Mode=Simple

[SimpleOutput]
StreamEncoder=x264
VBitrate=1000
ABitrate=128
Preset=veryfast
"""
    service = {
        "type": "rtmp_custom",
        "settings": {"server": server, "key": key, "use_auth": False, "bwtest": False},
    }
    scene_uuid, color_uuid = (f"6d717272-0000-4000-8000-00000000000{n}" for n in (1, 2))
    item = {"name": "Colour", "source_uuid": color_uuid, "visible": True, "id": 1,
            "pos": {"x": 0, "y": 0}, "scale": {"x": 1, "y": 1}, "rot": 0, "align": 5}  # fmt: skip
    scenes = {
        "name": COLLECTION,
        "current_scene": "Scene",
        "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {"id": "scene", "versioned_id": "scene", "name": "Scene", "uuid": scene_uuid,
             "settings": {"id_counter": 1, "custom_size": False, "items": [item]}},
            {"id": "color_source", "versioned_id": "color_source_v3", "name": "Colour",
             "uuid": color_uuid,
             "settings": {"color": 0xFF2060C0, "width": width, "height": height}},
        ],
    }  # fmt: skip
    return {
        "obs-studio/global.ini": global_ini,
        f"obs-studio/basic/profiles/{PROFILE}/basic.ini": basic_ini,
        f"obs-studio/basic/profiles/{PROFILE}/service.json": json.dumps(service),
        f"obs-studio/basic/scenes/{COLLECTION}.json": json.dumps(scenes),
    }


def write_obs_config(folder: Path, server: str, key: str) -> None:
    for name, text in obs_files(server, key).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def obs_argv() -> list[str]:
    """OBS streaming at start, on its own X server (xvfb-run picks a free display)."""
    xvfb_run = require_tool("xvfb-run")
    obs = require_tool("obs")
    return [xvfb_run, "-a", "-s", "-screen 0 1280x720x24 -nolisten tcp", obs,
            "--startstreaming", "--minimize-to-tray", "--multi", "--disable-missing-files-check",
            "--profile", PROFILE, "--collection", COLLECTION]  # fmt: skip


def obs_env(folder: Path) -> dict[str, str]:
    """OBS's config and cache in folder, nothing of the caller's environment."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(folder),
        "XDG_CONFIG_HOME": str(folder),
        "XDG_RUNTIME_DIR": str(folder / "run"),
        "LANG": "C.UTF-8",
    }
