"""Unit file contents (``unit-files/<hash>``) as a machine's units need them, cached.

Content is addressed by its hash, so a text once read never changes. Many units
assigned at once (an agent joining a busy cluster, a big `start`) are read in
transactions of up to ``UNIT_FILES_PER_TXN`` range reads each: one request per batch
instead of one per unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent import policy
from vulcano.keyspace import Keyspace


class UnitFiles:
    """Reads unit files from etcd once each; ``requests`` counts the etcd requests made."""

    def __init__(self, client: Callable[[], Any], keyspace: Keyspace) -> None:
        self._client = client
        self.ks = keyspace
        self._texts: dict[str, str] = {}
        self.requests = 0

    def text(self, digest: str) -> str | None:
        """The content with this hash (None: not in etcd)."""
        if digest not in self._texts:
            value, _ = self._client().get(self.ks.unit_file(digest))
            self.requests += 1
            if value is None:
                return None
            self._texts[digest] = value.decode("utf-8")
        return self._texts[digest]

    def prefetch(self, digests: Iterable[str]) -> None:
        """Read every one of these not read yet, many a request; missing ones stay unread."""
        wanted = sorted({d for d in digests if d not in self._texts})
        client = self._client()
        t = client.transactions
        step = policy.UNIT_FILES_PER_TXN
        for i in range(0, len(wanted), step):
            chunk = wanted[i : i + step]
            self.requests += 1
            _, responses = client.transaction(
                compare=[], success=[t.get(self.ks.unit_file(d)) for d in chunk], failure=[]
            )
            for digest, kvs in zip(chunk, responses, strict=True):
                if kvs:
                    self._texts[digest] = kvs[0][0].decode("utf-8")
