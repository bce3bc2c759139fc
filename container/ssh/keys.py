"""The container's own SSH key: ed25519, made on first start, kept 0600 in the state dir.

Its public half goes into every node's user-data, so the container can log in to the
machines it provisioned without an ssh-agent or a password.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_private_key,
)

from container.ssh.errors import IdentityError

log = logging.getLogger(__name__)

KEY_NAME = "id_ed25519"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def key_path(state_dir: Path) -> Path:
    return state_dir / KEY_NAME


def ensure_identity(state_dir: Path) -> Path:
    """The path of the container's private key, made (0600, with its .pub) if missing.

    Safe against a second process making it at the same moment: the key is written to a
    private temporary file and linked into place, and the loser keeps the winner's key.
    """
    path = key_path(state_dir)
    if state_dir.exists() and not state_dir.is_dir():
        raise IdentityError(f"SSH key {path}: state directory {state_dir} is not a directory")
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        _tighten(path)
        pub = path.with_name(KEY_NAME + ".pub")
        if not pub.exists():
            _write(pub, _public_line(path).encode() + b"\n", PUBLIC_MODE)
    except OSError as exc:
        raise IdentityError(f"SSH key {path}: {exc.strerror or exc}") from None
    return path


def _create(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    tmp = path.with_name(f".{KEY_NAME}.{os.getpid()}.tmp")
    _write(tmp, private, PRIVATE_MODE)
    try:
        os.link(tmp, path)
        log.info("made the container's SSH key %s", path)
    except FileExistsError:
        pass  # another process made it first: keep that one
    finally:
        tmp.unlink(missing_ok=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask may have taken bits the mode asked for


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("SSH key %s was readable by others (%o): made it 0600", path, mode)
        os.chmod(path, PRIVATE_MODE)


def _public_line(path: Path) -> str:
    key = load_ssh_private_key(path.read_bytes(), password=None)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return f"{public} vulcano@{socket.gethostname()}"


def public_key_line(state_dir: Path) -> str:
    """The container's public key as an authorized_keys line (made on first use)."""
    path = ensure_identity(state_dir)
    return path.with_name(KEY_NAME + ".pub").read_text().strip()


def load_identity(state_dir: Path) -> paramiko.PKey:
    """The container's private key, made on first use, for paramiko."""
    path = ensure_identity(state_dir)
    return load_key_file(path)


def load_key_file(path: Path) -> paramiko.PKey:
    """A private key file (OpenSSH or PEM; no passphrase) as paramiko's key."""
    try:
        return paramiko.PKey.from_path(str(path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise IdentityError(f"SSH key {path}: {exc}") from None
