"""`--tunnel` to an etcd requiring client certificates: the tunnel carries TCP only, so
the TLS session is still with the member, and its certificate (issued for the member's
own address, not for the loopback port the CLI dials) is checked against that address."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.container.conftest import MACHINE, announce
from tests.container.ssh.conftest import cli, require_sshd
from vulcano import etcd as vulcano_etcd
from vulcano.lab import services, sshd

pytestmark = pytest.mark.root

MEMBER_HOST = "127.0.0.31"  # not 127.0.0.1: the certificate does not name the tunnel's end


@pytest.fixture
def member(tmp_path: Path) -> Iterator[services.Etcd]:
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    base = tmp_path / "etcd"
    base.mkdir()
    etcd = services.new_etcd(base, host=MEMBER_HOST, tls=services.EtcdTLS.make(base / "tls"))
    etcd.start()
    try:
        etcd.wait_healthy()
        yield etcd
    finally:
        etcd.stop()


@pytest.fixture
def bastion(tmp_path: Path, container_key: str) -> Iterator[sshd.Sshd]:
    require_sshd()
    with sshd.sshd_server(tmp_path / "bastion", [container_key], extra=["LogLevel DEBUG1"]) as s:
        yield s


def test_list_machines_over_tls_through_the_tunnel(
    bastion: sshd.Sshd, member: services.Etcd, state_dir: Path
) -> None:
    tls = member.tls
    assert tls is not None
    client = vulcano_etcd.connect(member.endpoint, tls=tls.client_files())
    try:
        announce(client)
    finally:
        client.close()
    result = cli(
        state_dir,
        member,
        "--tunnel",
        f"root@{bastion.address}",
        "--cacert",
        str(tls.cacert),
        "--cert",
        str(tls.client_cert),
        "--key",
        str(tls.client_key),
    )("list-machines")
    assert result.exit_code == 0, result.output
    assert MACHINE.id[:8] in result.output
    host, port = member.host_port
    assert f"target {host} port {port}" in bastion.log().replace("\r", "")


def test_without_a_client_certificate_the_tunnel_does_not_help(
    bastion: sshd.Sshd, member: services.Etcd, state_dir: Path
) -> None:
    tls = member.tls
    assert tls is not None
    result = cli(
        state_dir, member, "--tunnel", f"root@{bastion.address}", "--cacert", str(tls.cacert)
    )("list-machines")
    assert result.exit_code == 1, result.output
    assert "etcd requires a client certificate and none was given" in result.output
    # the error names the member as the operator gave it, not the tunnel's loopback port
    assert f"{member.endpoint} (through" in result.output
