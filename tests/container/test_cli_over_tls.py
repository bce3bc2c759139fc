"""The `vulcano` CLI against etcd requiring client certificates: admitted with the
cluster's own (flags, fleetctl's spellings, VULCANO_* variables), refused without one,
still served by a three-member TLS cluster with a member down; bad TLS input is a usage
error naming the flag that writes nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from container.cli import main
from tests.conftest import require
from tests.container.conftest import DB, KS, MACHINE, announce
from vulcano import etcd as vulcano_etcd
from vulcano.lab import services
from vulcano.units import content_hash


@pytest.fixture
def tls(etcd_tls: services.Etcd) -> services.EtcdTLS:
    assert etcd_tls.tls is not None
    return etcd_tls.tls


@pytest.fixture
def client(etcd_tls: services.Etcd, tls: services.EtcdTLS) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd_tls.endpoint, tls=tls.client_files())
    yield c
    c.close()


def flags(tls: services.EtcdTLS) -> list[str]:
    return [
        "--cacert",
        str(tls.cacert),
        "--cert",
        str(tls.client_cert),
        "--key",
        str(tls.client_key),
    ]


def run(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"VULCANO_STATE_DIR": str(state_dir), **(env or {})})
    return runner.invoke(main, list(args), catch_exceptions=False)


def keys(client: Any) -> dict[str, bytes]:
    return {m.key.decode(): v for v, m in client.get_prefix("/")}


def test_list_machines_with_the_clusters_certificate(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any, state_dir: Path
) -> None:
    announce(client)
    r = run(state_dir, "--endpoint", etcd_tls.endpoint, *flags(tls), "list-machines")
    assert r.exit_code == 0, r.output
    assert MACHINE.id[:8] in r.output and MACHINE.public_ip in r.output


def test_submit_and_start_a_unit_over_tls(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any, state_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "db.service").write_text(DB)
    base = ["--endpoint", etcd_tls.endpoint, *flags(tls)]
    r = run(state_dir, *base, "submit", str(tmp_path / "db.service"))
    assert r.exit_code == 0, r.output
    r = run(state_dir, *base, "start", "--no-block", "db.service")
    assert r.exit_code == 0, r.output
    stored = keys(client)
    assert stored[KS.unit_file(content_hash(DB))] == DB.encode()
    assert json.loads(stored[KS.unit_spec("db.service")])["desired"] == "launched"


def test_fleetctl_spellings_and_variables_work_too(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any, state_dir: Path
) -> None:
    announce(client)
    r = run(
        state_dir,
        "--endpoint",
        etcd_tls.endpoint,
        "--ca-file",
        str(tls.cacert),
        "--cert-file",
        str(tls.client_cert),
        "--key-file",
        str(tls.client_key),
        "list-machines",
        "--no-legend",
    )
    assert r.exit_code == 0, r.output
    assert MACHINE.id[:8] in r.output
    env = {
        "VULCANO_ENDPOINT": etcd_tls.endpoint,
        "VULCANO_CACERT": str(tls.cacert),
        "VULCANO_CERT": str(tls.client_cert),
        "VULCANO_KEY": str(tls.client_key),
    }
    r = run(state_dir, "list-machines", "--no-legend", env=env)
    assert r.exit_code == 0, r.output
    assert MACHINE.id[:8] in r.output


def test_without_a_client_certificate_the_cli_is_refused_saying_so(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, state_dir: Path
) -> None:
    r = run(
        state_dir, "--endpoint", etcd_tls.endpoint, "--cacert", str(tls.cacert), "list-machines"
    )
    assert r.exit_code == 1, r.output
    assert "etcd requires a client certificate and none was given" in r.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "https:// etcd endpoints need --cacert"),
        (["--cacert", "{missing}"], "--cacert {missing}: No such file or directory"),
        (["--cacert", "{cacert}", "--cert", "{cert}"], "--cert given without --key"),
        (["--cacert", "{cacert}", "--cert", "{cert}", "--key", "{cacert}"], "--key {cacert}: not"),
        (["--cacert", "{cert}x", "--cert", "{cert}", "--key", "{key}"], "--cacert {cert}x"),
    ],
)
def test_bad_tls_input_is_a_usage_error_that_writes_nothing(
    etcd_tls: services.Etcd,
    tls: services.EtcdTLS,
    client: Any,
    state_dir: Path,
    tmp_path: Path,
    args: list[str],
    says: str,
) -> None:
    (tmp_path / "db.service").write_text(DB)
    names = {
        "missing": str(tmp_path / "missing.pem"),
        "cacert": str(tls.cacert),
        "cert": str(tls.client_cert),
        "key": str(tls.client_key),
    }
    filled = [a.format(**names) for a in args]
    before = keys(client)
    r = run(
        state_dir, "--endpoint", etcd_tls.endpoint, *filled, "submit", str(tmp_path / "db.service")
    )
    assert r.exit_code == 2, r.output
    assert says.format(**names) in r.output
    assert keys(client) == before
    assert not state_dir.exists()  # not even the audit database was opened


def test_mixed_schemes_and_tls_files_with_http_are_usage_errors(
    etcd_tls: services.Etcd, etcd: services.Etcd, tls: services.EtcdTLS, state_dir: Path
) -> None:
    mixed = f"{etcd_tls.endpoint},{etcd.endpoint}"
    r = run(state_dir, "--endpoint", mixed, *flags(tls), "list-machines")
    assert r.exit_code == 2 and "mix http:// and https://" in r.output, r.output
    r = run(state_dir, "--endpoint", etcd.endpoint, *flags(tls), "list-machines")
    assert r.exit_code == 2 and "--cacert given but the etcd endpoints are http://" in r.output


def test_a_tls_cluster_with_a_member_down_still_serves_the_cli(
    tmp_path_factory: pytest.TempPathFactory, state_dir: Path
) -> None:
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    with services.etcd_cluster(tmp_path_factory.mktemp("etcd-tls-members"), tls=True) as members:
        tls = members.tls
        assert tls is not None
        client = vulcano_etcd.connect(members.endpoints, tls=tls.client_files())
        try:
            announce(client)
        finally:
            client.close()
        members.members[0].kill()  # the first endpoint the CLI tries
        r = run(state_dir, "--endpoint", members.endpoints, *flags(tls), "list-machines")
        assert r.exit_code == 0, r.output
        assert MACHINE.id[:8] in r.output
