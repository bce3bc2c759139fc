"""A restarted relay keeps its outbox and never reuses a seq."""

from __future__ import annotations

from pathlib import Path

from container.services.relay import Relay, RelayTarget
from container.store.db import open_store
from tests.container.relay.conftest import summarize
from tests.container.relay.receiver import Receiver


def test_a_restart_keeps_the_outbox_and_the_seq(
    tmp_path: Path, receiver: Receiver, target: RelayTarget
) -> None:
    receiver.mode = "500"
    first = Relay(open_store(tmp_path), summarize, target)
    first.collect()
    first.collect()
    assert first.flush() is False
    first.stop()

    receiver.mode = "ok"
    again = Relay(open_store(tmp_path), summarize, target)
    assert again.outbox.seqs() == [1, 2]
    assert again.collect() == 3
    assert again.flush() is True
    assert receiver.seqs == [1, 2, 3]


def test_a_seq_whose_summary_was_not_made_is_not_handed_out_again(
    tmp_path: Path, target: RelayTarget
) -> None:
    relay = Relay(open_store(tmp_path), lambda seq: None, target)
    assert relay.collect() is None
    assert relay.outbox.last_seq() == 1
    assert Relay(open_store(tmp_path), summarize, target).collect() == 2


def test_a_new_state_dir_for_a_reporting_install_continues_after_the_installers_seq(
    tmp_path: Path, receiver: Receiver, target: RelayTarget
) -> None:
    receiver.seqs = list(range(1, 11))  # what an earlier container reported
    relay = Relay(open_store(tmp_path), summarize, target)
    relay.collect()
    relay.collect()
    assert relay.flush() is True
    assert receiver.seqs[10:] == [11, 12]  # renumbered, in order, none taken for a replay
    assert relay.collect() == 13
