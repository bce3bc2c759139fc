"""The audit log: every change made to a cluster through the CLI or the panel.

Who (an `Actor`: the OS user on the CLI, the logged-in admin on the panel), when, what
(an action on a target), on which cluster, and for unit files the diff of their content.
The service layer writes the entries (`Cluster.record`), after etcd took the change and
never for a refused one, so no face can forget to; a face only says who acts.

Entries live in the container's database (`container.store`), table ``audit``.
"""

from __future__ import annotations

import difflib
import getpass
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from container.services.errors import ServiceError
from container.store import Store

# What `entries()` returns when not told how many.
DEFAULT_LIMIT = 50


class AuditWriteError(ServiceError, OSError):
    """A change that cannot be (or was not) recorded in the audit log; says which."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a name and the face they used (``cli`` or ``panel``)."""

    name: str
    face: str

    @classmethod
    def of_this_process(cls, face: str = "cli") -> Actor:
        """The OS user running this process, at this host: ``user@host``."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
            user = "uid-unknown"
        return cls(f"{user}@{socket.gethostname()}", face)

    def __str__(self) -> str:
        return f"{self.name} ({self.face})"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change."""

    id: int
    at: float  # seconds since the epoch
    actor: str
    face: str
    action: str  # submit, replace, load, start, stop, unload, destroy, machine-remove
    target: str  # a unit name or a machine id
    cluster: str
    detail: str = ""
    diff: str = ""  # a unified diff of the unit file, for submit, replace and destroy

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "face": self.face,
            "action": self.action,
            "target": self.target,
            "cluster": self.cluster,
            "detail": self.detail,
            "diff": self.diff,
        }


class AuditLog:
    """The audit entries in one container database.

    ``store`` may be a function that opens it, so a face can make the log before it
    knows whether any command will change anything (`vulcano list-units` needs none).
    """

    def __init__(self, store: Store | Callable[[], Store]) -> None:
        self._store = store if isinstance(store, Store) else None
        self._open = None if isinstance(store, Store) else store

    @property
    def store(self) -> Store:
        """The database, opened on first use (StateDirError or StoreError if it cannot be)."""
        if self._store is None:
            assert self._open is not None
            self._store = self._open()
        return self._store

    def ready(self) -> None:
        """Raise now if entries cannot be written: called before a change is made."""
        self.store  # noqa: B018 - opening it is the check

    def record(
        self,
        actor: Actor,
        action: str,
        target: str,
        *,
        cluster: str = "",
        detail: str = "",
        diff: str = "",
        at: float | None = None,
    ) -> AuditEntry:
        """Write one entry and return it."""
        at = time.time() if at is None else at
        try:
            with self.store.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO audit (at, actor, face, action, target, cluster, detail, diff)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (at, actor.name, actor.face, action, target, cluster, detail, diff),
                )
                row_id = int(cursor.lastrowid or 0)
        except sqlite3.Error as exc:
            raise AuditWriteError(
                f"{action} {target} was done, but not recorded in the audit log "
                f"({self.store.path}: {exc})"
            ) from None
        return AuditEntry(row_id, at, actor.name, actor.face, action, target, cluster, detail, diff)

    def entries(
        self,
        limit: int = DEFAULT_LIMIT,
        since: float | None = None,
        target: str | None = None,
    ) -> list[AuditEntry]:
        """The latest ``limit`` entries, oldest first; from ``since`` on, about ``target``.

        A template's name as ``target`` (``web@.service``) also matches its instances.
        """
        where: list[str] = []
        args: list[object] = []
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if target is not None:
            names = ["target = ?"]
            args.append(target)
            prefix, at_sign, suffix = target.partition("@.")
            if at_sign:
                names.append("(target LIKE ? ESCAPE '\\')")
                args.append(f"{_like_escaped(prefix)}@%.{_like_escaped(suffix)}")
            where.append("(" + " OR ".join(names) + ")")
        sql = "SELECT * FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(0, limit))
        with self.store.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_entry(row) for row in reversed(rows)]


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        at=float(row["at"]),
        actor=str(row["actor"]),
        face=str(row["face"]),
        action=str(row["action"]),
        target=str(row["target"]),
        cluster=str(row["cluster"]),
        detail=str(row["detail"]),
        diff=str(row["diff"]),
    )


def unit_diff(name: str, old: str | None, new: str | None) -> str:
    """A unified diff of a unit file, ``old`` → ``new`` (None: the file did not exist)."""
    lines = difflib.unified_diff(
        _lines(old),
        _lines(new),
        fromfile="/dev/null" if old is None else f"a/{name}",
        tofile="/dev/null" if new is None else f"b/{name}",
        lineterm="",
    )
    return "\n".join(lines) + "\n" if old != new else ""


def _lines(text: str | None) -> list[str]:
    if text is None:
        return []
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines[-1] += " (no newline at end of file)"
    return lines
