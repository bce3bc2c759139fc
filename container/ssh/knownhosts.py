"""The container's known_hosts file, in OpenSSH's format (so ssh-keygen can read it).

Entries are ``host[,host...] type base64``, a host on a port other than 22 written
``[host]:port``; hashed names (``|1|salt|hash``) and ``@revoked`` lines written by
OpenSSH are understood, ``@cert-authority`` lines are skipped. The file is created 0600,
appended to, and rewritten atomically when a host is forgotten.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from container.ssh.hostkeys import HostKey

FILE_MODE = 0o600
_lock = threading.Lock()  # fanout threads record first-use keys into one file


def host_label(host: str, port: int) -> str:
    """How known_hosts names a host: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def _glob(pattern: str, label: str) -> bool:
    """OpenSSH's host patterns: only '*' and '?' are wildcards ('[' is literal)."""
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()
    )
    return re.fullmatch(regex, label.lower()) is not None


def _matches(patterns: str, label: str) -> bool:
    if patterns.startswith("|1|"):
        try:
            _, _, salt, digest = patterns.split("|", 3)
            mac = hmac.new(base64.b64decode(salt), label.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            return False
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if _glob(pattern[1:], label):
                return False
        elif _glob(pattern, label):
            matched = True
    return matched


class KnownHosts:
    """One known_hosts file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> list[tuple[str, str, str, str]]:
        """(marker, patterns, type, base64) of every usable line."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        entries = []
        for raw in text.splitlines():
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = ""
            if fields[0].startswith("@"):
                marker, fields = fields[0], fields[1:]
            if len(fields) >= 3:
                entries.append((marker, fields[0], fields[1], fields[2]))
        return entries

    def _keys(self, host: str, port: int, marker: str) -> list[HostKey]:
        from container.ssh.hostkeys import HostKey

        label = host_label(host, port)
        found = []
        for mark, patterns, key_type, encoded in self._entries():
            if mark == marker and _matches(patterns, label):
                try:
                    found.append(HostKey.from_line(f"{key_type} {encoded}"))
                except ValueError:
                    continue
        return found

    def keys_for(self, host: str, port: int) -> list[HostKey]:
        """Every key recorded for the host (on that port)."""
        return self._keys(host, port, "")

    def revoked(self, host: str, port: int, key: HostKey) -> bool:
        return any(k.blob == key.blob for k in self._keys(host, port, "@revoked"))

    def add(self, host: str, port: int, key: HostKey) -> None:
        """Append the host's key (the file is made 0600 if missing)."""
        line = f"{host_label(host, port)} {key.line}\n"
        with _lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            with os.fdopen(fd, "a") as f:
                f.write(line)

    def forget(self, host: str, port: int) -> int:
        """Remove every plain or hashed entry for the host; how many lines went."""
        label = host_label(host, port)
        with _lock:
            try:
                lines = self.path.read_text().splitlines(keepends=True)
            except FileNotFoundError:
                return 0
            kept = []
            removed = 0
            for raw in lines:
                fields = raw.split()
                if fields and fields[0].startswith("@"):
                    fields = fields[1:]
                if len(fields) < 3 or fields[0].startswith("#") or not _matches(fields[0], label):
                    kept.append(raw)
                    continue
                removed += 1
                others = [p for p in fields[0].split(",") if p != label and "|" not in p]
                if others:  # a line naming other hosts too keeps them
                    kept.append(raw.replace(fields[0], ",".join(others), 1))
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w") as f:
                f.writelines(kept)
            os.replace(tmp, self.path)
            return removed
