"""Where the lab keeps what it built, how it names it, and who builds it.

Everything the lab builds is named by a digest of its inputs, so a second build with
the same inputs is a lookup. Builds of one kind take that kind's file lock and look
again once they hold it, so two test runs on one machine build a thing once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from vulcano.lab import policy
from vulcano.lab.errors import LabError

DIGEST_CHARS = 16


def cache_dir() -> Path:
    """``$VULCANO_LAB_CACHE``, else ``$XDG_CACHE_HOME/vulcano-lab`` (~/.cache by default)."""
    explicit = os.environ.get("VULCANO_LAB_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "vulcano-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(parts: Iterable[str | bytes]) -> str:
    """A short hex digest of ``parts`` in order; each is length-prefixed, so none blur."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:DIGEST_CHARS]


@contextlib.contextmanager
def locked(name: str, timeout: float = policy.CACHE_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the cache's lock called ``name`` (waits for another holder, up to timeout)."""
    path = cache_dir() / f"{name}.lock"
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise LabError(f"waited {timeout:.0f}s for {path}: is a build stuck?") from None
                time.sleep(policy.POLL_INTERVAL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
