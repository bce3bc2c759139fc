"""SSH public keys for tests: real ones from ssh-keygen, and hand-built wire blobs."""

from __future__ import annotations

import base64
import secrets
import struct
import subprocess
import tempfile
from functools import cache
from pathlib import Path


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return ssh_string(raw)


def rsa_line(bits: int, comment: str = "test") -> str:
    """An ssh-rsa line with a random odd modulus of ``bits`` bits (shape only, no primes)."""
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    blob = ssh_string(b"ssh-rsa") + mpint(65537) + mpint(modulus)
    return f"ssh-rsa {base64.b64encode(blob).decode()} {comment}".rstrip()


def ed25519_line(comment: str = "test", key: bytes | None = None) -> str:
    blob = ssh_string(b"ssh-ed25519") + ssh_string(
        key if key is not None else secrets.token_bytes(32)
    )
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}".rstrip()


def line_from_blob(key_type: str, blob: bytes, comment: str = "") -> str:
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}".rstrip()


@cache
def keygen(key_type: str, bits: int | None = None, comment: str = "test@vulcano") -> str:
    """A real public key line made by OpenSSH's ssh-keygen."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "key"
        argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)]
        if bits:
            argv += ["-b", str(bits)]
        subprocess.run(argv, check=True, capture_output=True)
        return path.with_suffix(".pub").read_text().strip()
