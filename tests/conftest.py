"""Fixtures: a private bus per test (ipc sockets in a temporary directory) and processes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from installation.settings import Settings
from installation.testing import Processes, SystemdListener, private_environ, running_broker, settings_from

STATE_NODE = {"NODES__MODULES": '{"state": "tests.support.state_node"}'}


@pytest.fixture
def bus_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="lk-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def environ(bus_dir: Path) -> dict[str, str]:
    """LIKENESS_* variables for this test's own bus (and the test node's module)."""
    return private_environ(bus_dir, **STATE_NODE)


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return settings_from(environ)


@pytest.fixture
def broker(settings: Settings) -> Iterator[None]:
    with running_broker(settings):
        yield


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[SystemdListener]:
    listener = SystemdListener(tmp_path / "notify")
    yield listener
    listener.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    yield started
    started.kill_all()
