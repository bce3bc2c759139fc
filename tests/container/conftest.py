"""The container's fixtures: the `vulcano` CLI and a service-layer Cluster on real etcd."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import etcd3
import pytest
from click.testing import CliRunner, Result

from container.cli import main
from container.services.cluster import Cluster
from vulcano.keyspace import Keyspace
from vulcano.lab.services import Etcd
from vulcano.records import Machine, UnitState

WEB = (
    "[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n\n"
    "[X-Fleet]\nConflicts=web@*\n"
)
DB = "[Service]\nExecStart=/bin/sleep 1000\n"
KS = Keyspace()
MACHINE = Machine(
    id="0123456789abcdef",
    hostname="h1",
    public_ip="10.9.0.1",
    metadata={"region": "eu", "disk": "ssd"},
)

Invoke = Callable[..., Result]


@pytest.fixture
def client(etcd: Etcd) -> Iterator[etcd3.Etcd3Client]:
    host, port = etcd.host_port
    c = etcd3.client(host=host, port=port, timeout=5)
    yield c
    c.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The container's state directory for the test (its database: the audit log)."""
    return tmp_path / "state"


@pytest.fixture(autouse=True)
def _private_state_dir(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    # every `vulcano` run audits into the state dir: never the machine's /var/lib/vulcano
    monkeypatch.setenv("VULCANO_STATE_DIR", str(state_dir))


@pytest.fixture
def vulcano(etcd: Etcd, state_dir: Path) -> Invoke:
    runner = CliRunner(env={"VULCANO_STATE_DIR": str(state_dir)})

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--endpoint", etcd.endpoint, *args], catch_exceptions=False)

    return invoke


@pytest.fixture
def cluster(etcd: Etcd) -> Iterator[Cluster]:
    """The service layer's connection to the test etcd, closed after the test."""
    with Cluster(etcd.endpoint) as c:
        yield c


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "web@.service").write_text(WEB)
    (tmp_path / "db.service").write_text(DB)
    (tmp_path / "bad.service").write_text("[X-Fleet]\nMachineID=abc\nGlobal=true\n")
    return tmp_path


def dump(client: etcd3.Etcd3Client) -> dict[str, bytes]:
    return {m.key.decode(): v for v, m in client.get_prefix("/")}


def announce(client: etcd3.Etcd3Client, machine: Machine = MACHINE) -> None:
    """Put a machine record as its agent would (without the lease)."""
    client.put(KS.machine(machine.id), machine.to_json())


def report(client: etcd3.Etcd3Client, state: UnitState) -> None:
    """Put a runner's report on a unit, as the machine running it would."""
    assert state.machine_id is not None
    client.put(KS.unit_state(state.name, state.machine_id), state.to_json())


def publish_journal(client: etcd3.Etcd3Client, name: str, lines: list[str], seq: int) -> None:
    """Put a unit's journal as its runner publishes it."""
    client.put(KS.unit_journal(name), json.dumps({"seq": seq, "lines": lines}))
