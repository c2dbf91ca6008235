"""Fixtures for the end-to-end tests: the demo film made once, and a demo show to start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from installation.testing import Processes

from .demo import Demo, make_film, start_demo


@pytest.fixture(scope="session")
def demo_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo film, made once for every test (`likeness run --demo` makes it where it is missing)."""
    return make_film(tmp_path_factory.mktemp("film"))


@pytest.fixture
def demo(processes: Processes, environ: dict[str, str], tmp_path: Path, demo_film: Path) -> Callable[..., Demo]:
    """Starts `likeness run --demo` on this test's bus: `demo(cues=..., turns=N, tts_speed=4)`."""

    def start(**options) -> Demo:
        return start_demo(processes, environ, tmp_path, demo_film, **options)

    return start
