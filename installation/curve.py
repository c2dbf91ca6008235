"""CURVE keys for a bus that crosses machines (pyzmq's zmq.auth does the cryptography)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .messages import NAME_PATTERN
from .settings import BusSettings

_LOGGER = logging.getLogger(__name__)


class KeyFileError(Exception):
    """A key file is missing or unreadable; the message says which and what to run."""


def generate(name: str, directory: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write NAME.key (public, to share) and NAME.key_secret (private) into `directory`."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise KeyFileError(f"key name {name!r}: use lower-case letters, digits, - and _ (like a node name)")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    existing = [path for path in (public, secret) if path.exists()]
    if existing and not force:
        raise KeyFileError(f"{existing[0]} already exists (use --force to replace the key pair)")
    old_umask = os.umask(0o077)  # the secret is never readable by others, not even briefly
    try:
        public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old_umask)
    os.chmod(public_file, 0o644)
    return Path(public_file), Path(secret_file)


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.exists():
        name = path.name.split(".")[0]
        raise KeyFileError(f"bus.curve is on but {path} does not exist (run `likeness keys generate {name}`)")
    try:
        public, private = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{path}: not a key file ({error})") from None
    if secret and private is None:
        raise KeyFileError(f"{path}: holds no secret key")
    return public, private


def client_keys(settings: BusSettings) -> tuple[bytes, bytes, bytes]:
    """This machine's public and secret key, and the broker's public key."""
    public, private = _load(settings.keys_dir / f"{settings.node_key}.key_secret", secret=True)
    broker_public, _ = _load(settings.keys_dir / f"{settings.broker_key}.key", secret=False)
    assert private is not None
    return public, private, broker_public


def secure_client(socket: zmq.Socket, keys: tuple[bytes, bytes, bytes]) -> None:
    """Make `socket` a CURVE client of the broker (keys from client_keys())."""
    socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = keys


def server_keys(settings: BusSettings) -> tuple[bytes, bytes]:
    """The broker's public and secret key."""
    public, private = _load(settings.keys_dir / f"{settings.broker_key}.key_secret", secret=True)
    assert private is not None
    return public, private


def secure_server(socket: zmq.Socket, keys: tuple[bytes, bytes]) -> None:
    """Make `socket` a CURVE server (keys from server_keys())."""
    socket.curve_publickey, socket.curve_secretkey = keys
    socket.curve_server = True


class AuthorizedKeys:
    """Admits the public keys in a directory, re-read when it changes (no restart needed)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stamp: tuple[tuple[str, int, int, int], ...] | None = None
        self._keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        self._reload_if_changed()
        allowed = key in self._keys
        if not allowed:
            _LOGGER.warning("bus: refused a node whose public key is not in %s", self._directory)
        return allowed

    def _reload_if_changed(self) -> None:
        # Each file's own stat, not the directory's: `cp new.key authorized/kiosk.key` over an
        # existing file leaves the directory untouched, and the replaced key must stop working.
        try:
            self._directory.stat()
            files = sorted(self._directory.glob("*.key"))
            stats = [(file.name, file.stat()) for file in files]
            stamp = tuple((name, st.st_mtime_ns, st.st_size, st.st_ino) for name, st in stats)
        except OSError:
            self._keys, self._stamp = set(), None
            return
        if stamp == self._stamp:
            return
        keys = set()
        for file in files:
            try:
                keys.add(zmq.auth.load_certificate(str(file))[0])
            except (OSError, ValueError) as error:
                _LOGGER.warning("bus: skipping unreadable key %s: %s", file, error)
        self._keys, self._stamp = keys, stamp


def start_authenticator(context: zmq.Context, settings: BusSettings) -> ThreadAuthenticator:
    """The ZAP handler that admits only authorized keys; stop() it when the broker stops."""
    if not settings.authorized_dir.is_dir():
        raise KeyFileError(f"bus.curve is on but {settings.authorized_dir} (bus.authorized_dir) does not exist")
    authenticator = ThreadAuthenticator(context, log=logging.getLogger("installation.zap"))
    authenticator.start()
    authorized = AuthorizedKeys(settings.authorized_dir)
    authenticator.configure_curve_callback("*", credentials_provider=authorized)
    return authenticator
