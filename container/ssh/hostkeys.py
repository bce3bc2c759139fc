"""Host keys: their fingerprints, and the rule that decides whether a presented key is
the host's.

A machine of the cluster is checked against the keys its agent published with its
machine record (pinned: no prompt, no known_hosts entry needed). Any other host is
trusted on first use into known_hosts, then held to that key. A key that differs is
refused with both fingerprints and the command that accepts the new one deliberately,
unless strict checking is off, which accepts it, records it and says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from container.ssh.errors import HostKeyChanged
from container.ssh.knownhosts import KnownHosts

log = logging.getLogger(__name__)

# The host-key algorithms paramiko negotiates for each key type a host may be known by.
_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


def fingerprint(blob: bytes) -> str:
    """A key's SHA256 fingerprint exactly as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@dataclass(frozen=True)
class HostKey:
    """One public host key: its type and wire-format blob."""

    type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def line(self) -> str:
        return f"{self.type} {base64.b64encode(self.blob).decode()}"

    @classmethod
    def from_line(cls, line: str) -> HostKey:
        """``type base64 [comment]``; ValueError when it is not one."""
        parts = line.split()
        if len(parts) < 2:
            raise ValueError("expected '<type> <base64>'")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise ValueError("key is not base64") from None
        return cls(parts[0], blob)


def algorithms_for(keys: Sequence[HostKey]) -> tuple[str, ...]:
    """The host-key algorithms to offer so the host shows a key of a type we know.

    Offering only those makes a host that still has its old ed25519 key but also a new
    ecdsa one show the ed25519 key, and a changed key show as changed, not as unknown.
    """
    found: list[str] = []
    for key in keys:
        for algorithm in _ALGORITHMS.get(key.type, ()):
            if algorithm not in found:
                found.append(algorithm)
    return tuple(found)


@dataclass(frozen=True)
class HostKeyCheck:
    """How presented host keys are judged: known_hosts, and whether a change is refused."""

    known_hosts: KnownHosts
    strict: bool = True

    def expected(self, host: str, port: int, pinned: Sequence[HostKey]) -> list[HostKey]:
        """The keys the host must show one of (empty: not known yet)."""
        if pinned:
            return list(pinned)
        return self.known_hosts.keys_for(host, port)

    def verify(
        self,
        name: str,
        host: str,
        port: int,
        presented: HostKey,
        pinned: Sequence[HostKey] = (),
    ) -> None:
        """Accept the key (recording it on first use) or raise HostKeyChanged.

        ``name`` is how the host is named in messages ("machine 0123abcd…" or the
        destination as given); ``pinned`` are the keys its machine record published.
        """
        if self.known_hosts.revoked(host, port, presented):
            raise HostKeyChanged(
                f"{name}: host key {presented.fingerprint} is marked @revoked in "
                f"{self.known_hosts.path}"
            )
        expected = self.expected(host, port, pinned)
        if any(k.blob == presented.blob for k in expected):
            return
        if not expected:
            self.known_hosts.add(host, port, presented)
            log.warning(
                "%s: permanently added %s key %s to %s (trust on first use)",
                name,
                presented.type,
                presented.fingerprint,
                self.known_hosts.path,
            )
            return
        message = _changed_message(name, host, port, presented, expected, bool(pinned), self)
        if self.strict:
            raise HostKeyChanged(message)
        log.warning("%s; accepted, as --strict-host-key-checking=false asks", message)
        if not pinned:
            self.known_hosts.forget(host, port)
        self.known_hosts.add(host, port, presented)


def _changed_message(
    name: str,
    host: str,
    port: int,
    presented: HostKey,
    expected: Sequence[HostKey],
    pinned: bool,
    check: HostKeyCheck,
) -> str:
    same_type = [k for k in expected if k.type == presented.type] or list(expected)
    known = ", ".join(f"{k.type} {k.fingerprint}" for k in same_type)
    where = "its machine record (published by its agent)" if pinned else str(check.known_hosts.path)
    if pinned:
        accept = (
            "if the machine was rebuilt on purpose, restart its vulcano-agent so it publishes "
            "its new host keys (or pass --strict-host-key-checking=false once)"
        )
    else:
        destination = host if port == 22 else f"{host}:{port}"
        accept = (
            f"if the host was rebuilt on purpose, forget the old key with "
            f"`vulcano ssh-forget {destination}` and connect again"
        )
    return (
        f"HOST KEY CHANGED for {name} ({host}:{port}): it presented {presented.type} "
        f"{presented.fingerprint}, but {where} has {known}. Someone may be intercepting "
        f"the connection; refused. {accept}."
    )
