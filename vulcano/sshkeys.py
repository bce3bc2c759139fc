"""SSH public keys as users paste them: parsed and checked, never pattern-matched.

A key line is ``<type> <base64 blob> [comment]`` (the OpenSSH authorized_keys form
without options). The blob is decoded and walked field by field (RFC 4253 §6.6,
RFC 5656, RFC 8709, OpenSSH PROTOCOL.u2f): its embedded type must equal the outer one,
every field must be present with the right length, and nothing may trail it.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from vulcano.errors import VulcanoError

# Generous bounds: a 16384-bit RSA key is about 2.8 KB of base64.
MAX_LINE_CHARS = 8192
MAX_COMMENT_CHARS = 256
MAX_KEYS = 32
MAX_TEXT_CHARS = MAX_KEYS * MAX_LINE_CHARS  # a whole paste, comment lines included
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384

_ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
# The NIST curves' field primes and b (a = -3): a point must lie on its curve, or no
# signature verifies against it (SEC 1 §3.2.2.1; OpenSSH's sshkey_ec_validate_public).
_ECDSA_CURVES = {
    "nistp256": (
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    ),
    "nistp384": (
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        int(
            "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
            "C656398D8A2ED19D2A85C8EDD3EC2AEF",
            16,
        ),
    ),
    "nistp521": (
        2**521 - 1,
        int(
            "0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
            "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B50"
            "3F00",
            16,
        ),
    ),
}
# Ed25519 (RFC 8032 §5.1.3): the field prime and d, to decode the point
_ED_P = 2**255 - 19
_ED_D = (-121665 * pow(121666, -1, _ED_P)) % _ED_P


class SSHKeyError(VulcanoError, ValueError):
    """A public key we cannot accept; the message says which and why."""


@dataclass(frozen=True)
class PublicKey:
    """One validated public key."""

    type: str
    blob: bytes
    comment: str
    bits: int

    @property
    def line(self) -> str:
        """The canonical authorized_keys line: type, re-encoded base64, comment."""
        encoded = base64.b64encode(self.blob).decode("ascii")
        return f"{self.type} {encoded} {self.comment}".rstrip()


class _Reader:
    """Reads SSH wire-format fields from a key blob."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self, what: str) -> bytes:
        if len(self.data) - self.pos < 4:
            raise SSHKeyError(f"key data ends before its {what}")
        (length,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        if length > len(self.data) - self.pos:
            raise SSHKeyError(f"key data ends inside its {what}")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def mpint(self, what: str) -> int:
        raw = self.string(what)
        if raw and raw[0] & 0x80:
            raise SSHKeyError(f"key's {what} is negative")
        # RFC 4251 §5: no needless leading zero byte (OpenSSH refuses such a key)
        if len(raw) >= 2 and raw[0] == 0 and not raw[1] & 0x80:
            raise SSHKeyError(f"key's {what} has a needless leading zero byte")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise SSHKeyError(f"key data has {len(self.data) - self.pos} stray bytes at its end")


def _check_rsa(r: _Reader) -> int:
    exponent = r.mpint("RSA exponent")
    modulus = r.mpint("RSA modulus")
    if exponent < 3 or exponent % 2 == 0:
        raise SSHKeyError("RSA exponent is not a valid public exponent")
    bits = modulus.bit_length()
    if bits < RSA_MIN_BITS:
        raise SSHKeyError(f"RSA key has {bits} bits; at least {RSA_MIN_BITS} are required")
    if bits > RSA_MAX_BITS:
        raise SSHKeyError(f"RSA key has {bits} bits; at most {RSA_MAX_BITS} are accepted")
    if modulus % 2 == 0:
        raise SSHKeyError("RSA modulus is even")
    return bits


def _check_ed25519(r: _Reader) -> int:
    point = r.string("Ed25519 public key")
    if len(point) != 32:
        raise SSHKeyError("Ed25519 public key is not 32 bytes")
    if not _ed25519_decodes(point):
        raise SSHKeyError("Ed25519 public key is not a point on the curve")
    return 256


def _ed25519_decodes(point: bytes) -> bool:
    """RFC 8032 §5.1.3's decoding succeeds: y below p, and x² = (y²-1)/(dy²+1) has a root."""
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    if y >= _ED_P:
        return False
    u, v = (y * y - 1) % _ED_P, (_ED_D * y * y + 1) % _ED_P
    x2 = u * pow(v, -1, _ED_P) % _ED_P
    if x2 == 0:
        return not point[31] & 0x80  # x = 0 has no negative form
    return pow(x2, (_ED_P - 1) // 2, _ED_P) == 1  # Euler: a square mod p


def _check_ecdsa(r: _Reader, curve: str) -> int:
    if r.string("curve name").decode("ascii", "replace") != curve:
        raise SSHKeyError(f"ECDSA key's curve does not match its type ({curve})")
    point = r.string("ECDSA point")
    if len(point) != _ECDSA_POINT_BYTES[curve] or point[0] != 0x04:
        raise SSHKeyError(f"ECDSA point is not an uncompressed {curve} point")
    p, b = _ECDSA_CURVES[curve]
    half = (len(point) - 1) // 2
    x, y = int.from_bytes(point[1 : 1 + half], "big"), int.from_bytes(point[1 + half :], "big")
    if x >= p or y >= p or (y * y - (x * x * x - 3 * x + b)) % p:
        raise SSHKeyError(f"ECDSA point is not on the {curve} curve")
    return int(curve.removeprefix("nistp"))


def _check_blob(key_type: str, blob: bytes) -> int:
    r = _Reader(blob)
    embedded = r.string("type")
    if embedded != key_type.encode("ascii"):
        raise SSHKeyError(f"key data says {embedded[:40]!r}, not {key_type}")
    if key_type == "ssh-rsa":
        bits = _check_rsa(r)
    elif key_type == "ssh-ed25519":
        bits = _check_ed25519(r)
    elif key_type.startswith("ecdsa-sha2-"):
        bits = _check_ecdsa(r, key_type.removeprefix("ecdsa-sha2-"))
    elif key_type == "sk-ssh-ed25519@openssh.com":
        bits = _check_ed25519(r)
        r.string("application")
    else:  # sk-ecdsa-sha2-nistp256@openssh.com
        bits = _check_ecdsa(r, "nistp256")
        r.string("application")
    r.end()
    return bits


SUPPORTED_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def parse_key(line: str) -> PublicKey:
    """Parse one ``type base64 [comment]`` line into a checked key."""
    if len(line) > MAX_LINE_CHARS:
        raise SSHKeyError(f"longer than {MAX_LINE_CHARS} characters")
    if not line.isprintable():
        raise SSHKeyError("contains control characters")
    parts = line.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise SSHKeyError("expected '<type> <base64 key> [comment]'")
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) == 3 else ""
    if key_type not in SUPPORTED_TYPES:
        shown = key_type[:40]
        raise SSHKeyError(
            f"key type {shown!r} is not supported (use one of {', '.join(SUPPORTED_TYPES)}; "
            "authorized_keys options before the type are not accepted)"
        )
    try:
        blob = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SSHKeyError("key data is not valid base64") from None
    if len(comment) > MAX_COMMENT_CHARS:
        raise SSHKeyError(f"comment is longer than {MAX_COMMENT_CHARS} characters")
    bits = _check_blob(key_type, blob)
    return PublicKey(type=key_type, blob=blob, comment=comment, bits=bits)


def parse_keys(text: str) -> list[PublicKey]:
    """Parse pasted keys, one per line; blank lines and '#' comment lines are skipped.

    Errors name the line (1-based) so the user can find it.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise SSHKeyError(f"longer than {MAX_TEXT_CHARS // 1024} KiB")
    keys: list[PublicKey] = []
    seen: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = parse_key(line)
        except SSHKeyError as exc:
            raise SSHKeyError(f"line {number}: {exc}") from None
        if key.blob in seen:
            raise SSHKeyError(f"line {number}: the same key is given twice")
        seen.add(key.blob)
        keys.append(key)
        if len(keys) > MAX_KEYS:
            raise SSHKeyError(f"more than {MAX_KEYS} keys")
    if not keys:
        raise SSHKeyError("at least one public key is required")
    return keys
