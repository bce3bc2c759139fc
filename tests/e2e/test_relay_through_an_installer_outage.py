"""The container's relay and the real hosted installer across an outage of the installer:
every summary made while it was down arrives once, in order, and its history has no gap.

The installer is the real app under gunicorn on the Datastore emulator, stopped and
started again on the same port (the emulator keeps its data meanwhile). The relay is the
container's own (`container.services.relay`), with its outbox in a real store; it reports
with the reporting secret the install's own provisioning user-data carries. Summaries
are a minute apart on a clock of the test's, so the history's one-minute tier can be
checked slot by slot without waiting minutes.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import yaml
from google.cloud import ndb

from appengine.heartbeat_models import ClusterHeartbeat
from appengine.models import Install
from container.services.relay import Relay, RelayTarget
from container.store import open_store
from vulcano import cloudconfig
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary
from vulcano.lab import provisioning, services
from vulcano.lab.installer import installer_server
from vulcano.lab.ports import reserve_port

BEFORE, DURING, AFTER = 3, 6, 2  # summaries made with the installer up, down, up again
STEP = 60.0


def _reporting_token(document: str) -> str:
    files = {f["path"]: f["content"] for f in yaml.safe_load(document)["write_files"]}
    return str(files[cloudconfig.REPORT_TOKEN_HOST_PATH]).strip()


def test_every_summary_made_while_the_installer_was_down_arrives_once_in_order(
    datastore: services.DatastoreEmulator, tmp_path: Path
) -> None:
    port = reserve_port()
    start = time.time() - 3600  # an hour ago, a minute apart: inside the 6 h tier
    made: list[int] = []

    def summarize(seq: int) -> ClusterSummary:
        made.append(seq)
        at = start + STEP * (len(made) - 1)
        machines = [MachineSummary("m1", MachineHealth.UP, at - 2, "prod-1", "10.0.0.2")]
        return ClusterSummary("prod", seq, at, STEP, machines)

    with installer_server(datastore, tmp_path / "installer-1.log", port=port) as installer:
        document = provisioning.create_install(installer, cluster_name="prod", size=1)
        relay = Relay(
            open_store(tmp_path),
            summarize,
            RelayTarget(installer.url, _reporting_token(document.text)),
        )
        for _ in range(BEFORE):
            relay.collect()
            assert relay.flush()
        assert len(relay.outbox) == 0

    # The installer is down: summaries queue in the outbox, none is lost or sent.
    for _ in range(DURING):
        relay.collect()
        assert not relay.flush()
    assert len(relay.outbox) == DURING

    with installer_server(datastore, tmp_path / "installer-2.log", port=port):
        for _ in range(AFTER):
            relay.collect()
        assert relay.flush()
        assert len(relay.outbox) == 0
        # What the installer stored, read from the emulator as the status page reads it.
        with ndb.Client().context():
            [install] = Install.query().fetch()
            stored = ClusterHeartbeat.key_for(install.key).get()
    assert stored is not None
    total = BEFORE + DURING + AFTER
    assert stored.seq == made[-1] == total  # the last summary made is the last stored
    minutes = stored.history()[0].rows(time.time())
    assert [row.count for row in minutes] == [1] * total  # each once, none lost
    starts = [row.start for row in minutes]
    assert all(b - a == STEP for a, b in itertools.pairwise(starts))  # no gap
    assert stored.latest().at == start + STEP * (total - 1)
