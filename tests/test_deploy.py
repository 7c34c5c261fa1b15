"""The systemd unit: systemd accepts it, and its sandboxing scores as the README says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .support import require_tool

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "mqttrelay.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    # verify checks that ExecStart exists: point it at this checkout's install
    unit = tmp_path / "mqttrelay.service"
    unit.write_text(UNIT.read_text().replace("/opt/mqttrelay", str(ROOT)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_sandboxing_score_is_the_one_in_the_readme() -> None:
    analyze = require_tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(
        r"Overall exposure level for mqttrelay\.service: ([0-9.]+) (\w+)", result.stdout
    )
    assert found, result.stdout[-2000:]
    score, verdict = found.groups()
    assert float(score) <= 2.0 and verdict == "OK"
    readme = (ROOT / "docs" / "operations.md").read_text()
    assert f"`systemd-analyze security` scores it {score} ({verdict})" in readme
    for setting in ("ProtectProc=invisible", "ProcSubset=pid", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "PrivateTmp=yes"):  # fmt: skip
        assert setting in UNIT.read_text() and setting in readme, setting
