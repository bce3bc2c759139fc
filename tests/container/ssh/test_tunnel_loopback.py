"""`--tunnel` on loopback: etcd reached through a real sshd's port-forward, and every bad
tunnel named (unreachable host, bad syntax, a refused key), with a non-zero exit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest

from container.services import machines
from container.services.cluster import Cluster
from container.ssh.settings import SSHSettings
from tests.container.conftest import MACHINE, announce
from tests.container.ssh.conftest import cli, require_sshd
from vulcano.lab import sshd
from vulcano.lab.services import Etcd

pytestmark = pytest.mark.root


@pytest.fixture
def bastion(tmp_path: Path, container_key: str) -> Iterator[sshd.Sshd]:
    """An sshd that logs each forward it opens (so a test sees the path etcd took)."""
    require_sshd()
    with sshd.sshd_server(tmp_path / "bastion", [container_key], extra=["LogLevel DEBUG1"]) as s:
        yield s


def test_list_machines_goes_through_the_tunnel(
    bastion: sshd.Sshd, etcd: Etcd, state_dir: Path, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    result = cli(state_dir, etcd, "--tunnel", f"root@{bastion.address}")("list-machines")
    assert result.exit_code == 0, result.output
    assert MACHINE.id[:8] in result.output
    host, port = etcd.host_port
    assert f"target {host} port {port}" in bastion.log().replace("\r", "")


def test_the_cluster_opens_its_tunnel_lazily_and_closes_it(
    bastion: sshd.Sshd, etcd: Etcd, settings: SSHSettings, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    cluster = Cluster(etcd.endpoint, tunnel=f"root@{bastion.address}", ssh=settings)
    assert cluster._tunnel is None  # nothing opened before a command needs it
    assert [m.id for m in machines.list_machines(cluster)] == [MACHINE.id]
    tunnel = cluster._tunnel
    assert tunnel is not None and tunnel.connection.transport.is_active()
    cluster.close()
    assert not tunnel.connection.transport.is_active()
    assert cluster._tunnel is None
    assert [m.id for m in machines.list_machines(cluster)] == [MACHINE.id]  # opens again
    cluster.close()


def test_an_unreachable_tunnel_host_is_named(etcd: Etcd, state_dir: Path) -> None:
    port = sshd.free_closed_port()
    result = cli(state_dir, etcd, "--tunnel", f"core@127.0.0.1:{port}")("list-machines")
    assert result.exit_code == 1
    assert f"tunnel host core@127.0.0.1:{port}: cannot connect to 127.0.0.1:{port}" in (
        result.output
    )


@pytest.mark.parametrize(
    ("tunnel", "says"),
    [
        ("root@", "is not a host name or address"),
        ("root@host:99999", "port '99999' is not 1-65535"),
        ("a b@host", "is not a user name"),
    ],
)
def test_bad_tunnel_syntax_is_a_usage_error(
    etcd: Etcd, state_dir: Path, tunnel: str, says: str
) -> None:
    result = cli(state_dir, etcd, "--tunnel", tunnel)("list-machines")
    assert result.exit_code == 2
    assert "--tunnel" in result.output and says in result.output


def test_a_tunnel_host_that_refuses_our_key_is_named(
    tmp_path: Path, etcd: Etcd, state_dir: Path
) -> None:
    require_sshd()
    with sshd.sshd_server(tmp_path / "closed", []) as locked:
        result = cli(state_dir, etcd, "--tunnel", f"root@{locked.address}")("list-machines")
    assert result.exit_code == 1
    assert f"tunnel host root@{locked.address}: root@{locked.address} accepted none" in (
        result.output
    )


def test_the_tunnel_flags_come_from_the_environment_too(
    bastion: sshd.Sshd,
    etcd: Etcd,
    state_dir: Path,
    client: etcd3.Etcd3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    announce(client)
    monkeypatch.setenv("VULCANO_TUNNEL", f"root@{bastion.address}")
    monkeypatch.setenv("VULCANO_KNOWN_HOSTS_FILE", str(state_dir / "elsewhere"))
    result = cli(state_dir, etcd)("list-machines")
    assert result.exit_code == 0, result.output
    assert (state_dir / "elsewhere").exists() and not (state_dir / "known_hosts").exists()
