"""A long outage folds the oldest summaries: the outbox never grows past its limit."""

from __future__ import annotations

from container.services.relay import Relay, RelayTarget
from container.store.db import Store
from tests.container.relay.conftest import summarize
from tests.container.relay.receiver import Receiver


def test_folding_bounds_the_outbox_and_keeps_the_newest_state_in_order(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target, outbox_limit=3)
    receiver.mode = "500"
    for _ in range(10):
        relay.collect()
        relay.flush()
        assert len(relay.outbox) <= 3
    assert relay.outbox.seqs() == [8, 9, 10]
    oldest = relay.outbox.oldest()
    assert oldest is not None
    assert (oldest.first_seq, oldest.seq, oldest.folded) == (1, 8, 8)
    assert '"seq":8' in oldest.summary  # the newer summary of each fold is the one kept

    receiver.mode = "ok"
    assert relay.flush() is True
    assert receiver.seqs == [8, 9, 10]
