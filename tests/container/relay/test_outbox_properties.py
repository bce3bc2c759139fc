"""The outbox under any mix of queued summaries and deliveries: bounded, in order, and
every summary accounted for (delivered whole, or folded into a later one)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from container.services.outbox import Outbox
from container.store.db import open_store
from tests.container.relay.conftest import summarize


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(min_value=2, max_value=6),
    steps=st.lists(st.sampled_from(["queue", "deliver"]), max_size=40),
)
def test_the_outbox_stays_bounded_ordered_and_loses_no_count(limit: int, steps: list[str]) -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        outbox = Outbox(open_store(Path(state_dir)), limit)
        queued = 0
        sent: list[int] = []
        stood_for = 0  # how many summaries the delivered entries stood for
        for step in steps:
            if step == "queue":
                outbox.append(summarize(outbox.reserve_seq()))
                queued += 1
            elif (entry := outbox.oldest()) is not None:
                outbox.remove(entry.seq)
                sent.append(entry.seq)
                stood_for += entry.folded
            assert len(outbox) <= limit
        seqs = outbox.seqs()
        assert seqs == sorted(seqs) and (not sent or not seqs or sent[-1] < seqs[0])
        assert sent == sorted(set(sent))
        with outbox.store.read() as conn:
            folded = conn.execute("SELECT COALESCE(SUM(folded), 0) FROM outbox").fetchone()[0]
        assert stood_for + folded == queued
        assert outbox.last_seq() == queued
        # The entries left cover the seqs after the last delivered one without a hole.
        with outbox.store.read() as conn:
            ranges = conn.execute("SELECT first_seq, seq FROM outbox ORDER BY seq").fetchall()
        expected_first = (sent[-1] + 1) if sent else 1
        for first, last in ranges:
            assert first == expected_first and first <= last
            expected_first = last + 1
