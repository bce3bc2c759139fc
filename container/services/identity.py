"""The provisioning container's own SSH identity: an ed25519 key in the state directory.

``<state_dir>/id_ed25519`` (OpenSSH private key format, 0600) and its ``.pub`` (the
authorized_keys line every node's user-data carries). Made on first need; a second
process making it at the same moment keeps the first one's key.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_private_key,
)

from container.services.errors import StateDirError

log = logging.getLogger(__name__)

KEY_NAME = "id_ed25519"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def ensure_container_key(state_dir: Path) -> str:
    """The container's public key line, the key pair made first if it is missing."""
    private = state_dir / KEY_NAME
    public = state_dir / f"{KEY_NAME}.pub"
    try:
        if not private.exists():
            _create(private, public)
        if not public.exists():
            _write(public, _public_line(private) + b"\n", PUBLIC_MODE)
        return public.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise StateDirError(f"SSH key {private}: {exc.strerror or exc}") from None


def _public_line(private: Path) -> bytes:
    key = load_ssh_private_key(private.read_bytes(), password=None)
    line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return line + f" vulcano@{socket.gethostname()}".encode()


def _create(private: Path, public: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    tmp = private.with_name(f".{KEY_NAME}.{os.getpid()}.tmp")
    _write(tmp, pem, PRIVATE_MODE)
    try:
        os.link(tmp, private)
    except FileExistsError:
        return  # another process made it first: keep that one
    finally:
        tmp.unlink(missing_ok=True)
    tmp_pub = public.with_name(f".{KEY_NAME}.pub.{os.getpid()}.tmp")
    _write(tmp_pub, _public_line(private) + b"\n", PUBLIC_MODE)
    os.replace(tmp_pub, public)
    log.info("made the container's SSH key %s", private)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask may have taken bits the mode asked for
