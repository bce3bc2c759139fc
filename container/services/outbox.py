"""The relay's durable outbox: cluster summaries waiting for the installer's acknowledgement.

It lives in the container's store (migration 2), so a restart keeps what was not yet
delivered, and the heartbeat sequence with it: `reserve_seq` hands out each number once,
ever. Entries leave only through `remove` (the installer took it, or will never take it).

Bounded: past ``limit`` entries, `append` folds the two oldest into one. The folded entry
keeps the *newer* summary (its state and its seq) and remembers the older one's
``first_seq`` and how many summaries it now stands for (``folded``); the older summary's
own state is dropped. Because the kept seq is the newer one, every entry's seq is still
below every later entry's, so the installer still receives strictly increasing seqs, in
order; it sees a jump in seq where summaries were folded. Repeated folding makes the
oldest entry stand for a longer and longer stretch while the newest ``limit - 1``
summaries stay whole.

If the installer already holds a seq *past* the oldest entry's (the state dir was made
anew or restored from a backup, so the counter went back), `renumber_after` gives the
queued summaries fresh seqs after the installer's, keeping their order, and moves the
counter past them: they are sent rather than taken for replays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from container.store.db import Store
from vulcano.heartbeat import ClusterSummary

LAST_SEQ_SETTING = "relay.last_seq"


@dataclass(frozen=True)
class OutboxEntry:
    """One queued summary; it stands for the summaries ``first_seq`` .. ``seq``."""

    seq: int
    first_seq: int
    folded: int
    queued_at: float
    summary: str  # its JSON, exactly as it will be sent


class Outbox:
    """The outbox in ``store``, keeping at most ``limit`` entries."""

    def __init__(self, store: Store, limit: int) -> None:
        if limit < 2:
            raise ValueError("an outbox folds its two oldest: it needs a limit of 2 or more")
        self.store = store
        self.limit = limit

    def reserve_seq(self) -> int:
        """The next heartbeat seq, recorded as used before it is returned (never reused)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT value FROM settings WHERE name = ?", (LAST_SEQ_SETTING,)
            ).fetchone()
            seq = (int(row["value"]) if row else 0) + 1
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (LAST_SEQ_SETTING, str(seq)),
            )
        return seq

    def last_seq(self) -> int:
        value = self.store.setting(LAST_SEQ_SETTING)
        return int(value) if value else 0

    def append(self, summary: ClusterSummary) -> int:
        """Queue ``summary`` (its seq from `reserve_seq`); fold the oldest past the limit.

        Returns how many folds were made (0 almost always).
        """
        folds = 0
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO outbox (seq, first_seq, folded, queued_at, summary) "
                "VALUES (?, ?, 1, ?, ?)",
                (summary.seq, summary.seq, time.time(), summary.to_json()),
            )
            count = int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            while count > self.limit:
                older, newer = conn.execute(
                    "SELECT seq, first_seq, folded FROM outbox ORDER BY seq LIMIT 2"
                ).fetchall()
                conn.execute(
                    "UPDATE outbox SET first_seq = ?, folded = folded + ? WHERE seq = ?",
                    (older["first_seq"], older["folded"], newer["seq"]),
                )
                conn.execute("DELETE FROM outbox WHERE seq = ?", (older["seq"],))
                count -= 1
                folds += 1
        return folds

    def renumber_after(self, installer_seq: int) -> int:
        """Re-key every queued summary after ``installer_seq`` (and the counter); how many."""
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT value FROM settings WHERE name = ?", (LAST_SEQ_SETTING,)
            ).fetchone()
            base = max(int(row["value"]) if row else 0, installer_seq)
            rows = conn.execute("SELECT seq, summary FROM outbox ORDER BY seq").fetchall()
            # New seqs are above every old one, so no update collides with a row not yet moved.
            for offset, old in enumerate(rows, start=1):
                summary = replace(ClusterSummary.from_json(old["summary"]), seq=base + offset)
                conn.execute(
                    "UPDATE outbox SET seq = ?, first_seq = ?, summary = ? WHERE seq = ?",
                    (summary.seq, summary.seq, summary.to_json(), old["seq"]),
                )
            conn.execute(
                "UPDATE settings SET value = ? WHERE name = ?",
                (str(base + len(rows)), LAST_SEQ_SETTING),
            )
        return len(rows)

    def oldest(self) -> OutboxEntry | None:
        with self.store.read() as conn:
            row = conn.execute(
                "SELECT seq, first_seq, folded, queued_at, summary FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return OutboxEntry(
            int(row["seq"]),
            int(row["first_seq"]),
            int(row["folded"]),
            float(row["queued_at"]),
            str(row["summary"]),
        )

    def remove(self, seq: int) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def seqs(self) -> list[int]:
        """Every queued seq, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute("SELECT seq FROM outbox ORDER BY seq").fetchall()
        return [int(r["seq"]) for r in rows]
