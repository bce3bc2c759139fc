"""The relay delivers every summary once, in order, through a down or lossy installer."""

from __future__ import annotations

import logging
import time

import pytest

from container.services.relay import Relay, RelayTarget
from container.store.db import Store
from tests.container.relay.conftest import TOKEN, summarize
from tests.container.relay.receiver import Receiver
from vulcano.policy import Backoff


def test_summaries_arrive_in_order_with_the_bearer_token(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target)
    assert [relay.collect() for _ in range(3)] == [1, 2, 3]
    assert relay.flush() is True
    assert receiver.seqs == [1, 2, 3]
    assert receiver.authorizations == {f"Bearer {TOKEN}"}
    assert len(relay.outbox) == 0


def test_a_down_installer_keeps_the_outbox_and_gets_it_all_when_back(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target)
    receiver.mode = "500"
    for _ in range(3):
        relay.collect()
        assert relay.flush() is False
    assert relay.outbox.seqs() == [1, 2, 3]
    receiver.mode = "ok"
    relay.collect()
    assert relay.flush() is True
    assert receiver.seqs == [1, 2, 3, 4]


def test_a_lost_answer_is_retried_and_its_409_counts_as_delivered(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target)
    receiver.mode = "lose"
    relay.collect()
    assert relay.flush() is False  # stored there, but the relay never heard
    assert relay.outbox.seqs() == [1]
    receiver.mode = "ok"
    relay.collect()
    assert relay.flush() is True
    assert receiver.seqs == [1, 2]
    assert receiver.requests == 3  # 1 (lost), 1 again (409), 2
    assert len(relay.outbox) == 0


def test_a_refused_summary_is_dropped_loudly_without_the_token(
    store: Store, receiver: Receiver, target: RelayTarget, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(store, summarize, target)
    receiver.mode = "401"
    relay.collect()
    with caplog.at_level(logging.INFO):
        assert relay.flush() is True
    assert len(relay.outbox) == 0
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert refused and "REFUSED heartbeat seq 1" in refused[0].getMessage()
    assert TOKEN not in caplog.text


def test_the_running_relay_bridges_an_outage_with_no_gap_and_stops_promptly(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target, interval=0.05, backoff=Backoff(0.02, 0.05))
    receiver.mode = "500"
    relay.start()
    try:
        time.sleep(0.4)
        assert receiver.seqs == []
        receiver.mode = "ok"
        deadline = time.monotonic() + 10
        while len(receiver.seqs) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread = relay._thread
        relay.stop()
    # stop() returned with its thread ended (it waits at most policy.RELAY_STOP_TIMEOUT)
    assert thread is not None and not thread.is_alive()
    assert len(receiver.seqs) >= 12
    assert receiver.seqs == list(range(1, len(receiver.seqs) + 1))


def test_a_rate_bound_installer_is_waited_for_as_its_retry_after_says(
    store: Store, receiver: Receiver, target: RelayTarget
) -> None:
    relay = Relay(store, summarize, target)
    receiver.mode = "429"
    relay.collect()
    assert relay.flush() is False
    assert relay.retry_after == 7.0 and relay.outbox.seqs() == [1]
    receiver.mode = "ok"
    assert relay.flush() is True and relay.retry_after is None
    assert receiver.seqs == [1]
