"""The systemd units start commands that exist, as notify services with a watchdog."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).parent.parent / "systemd").glob("*.service"))


def _service(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    return parser["Service"]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_a_unit_runs_a_real_likeness_command_under_the_watchdog(unit):
    service = _service(unit)
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 1
    argv = shlex.split(service["ExecStart"].replace("%i", "state"))
    assert argv[0].endswith("/.venv/bin/likeness")
    done = subprocess.run([sys.executable, "-m", "installation", *argv[1:], "--help"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout


def test_the_node_template_and_the_broker_belong_to_the_target():
    for unit in UNITS:
        assert "PartOf=likeness.target" in unit.read_text()
