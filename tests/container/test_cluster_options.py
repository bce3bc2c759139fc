"""The `vulcano` group's options: which cluster (--etcd-endpoints, --prefix), --version."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import etcd3
import pytest
from click.testing import CliRunner

from container.cli import main
from tests.container.conftest import KS, MACHINE, announce
from vulcano.lab.services import Etcd


def test_unreachable_etcd_is_a_clear_error() -> None:
    from vulcano.lab.ports import reserve_port

    r = CliRunner().invoke(main, ["--endpoint", f"http://127.0.0.1:{reserve_port()}", "list-units"])
    assert r.exit_code == 1 and "etcd:" in r.output


def test_bad_endpoint_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["--endpoint", "ftp://x", "list-units"])
    assert r.exit_code == 2 and "scheme must be http" in r.output


def test_bad_prefix_is_a_usage_error(etcd: Etcd) -> None:
    r = CliRunner().invoke(main, ["--endpoint", etcd.endpoint, "--prefix", "vulcano", "list-units"])
    assert r.exit_code == 2 and "must start and end with '/'" in r.output


def test_units_live_under_the_given_prefix(
    etcd: Etcd, files: Path, client: etcd3.Etcd3Client
) -> None:
    r = CliRunner().invoke(
        main,
        ["--endpoint", etcd.endpoint, "--prefix", "/other/", "submit", str(files / "db.service")],
    )
    assert r.exit_code == 0, r.output
    assert client.get("/other/units/db.service")[0] is not None
    assert client.get(KS.unit_spec("db.service"))[0] is None


@pytest.mark.parametrize("flag", ["--etcd-endpoints", "--endpoint"])
def test_etcd_endpoints_flag_and_its_endpoint_alias_both_name_the_cluster(
    flag: str, etcd: Etcd, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    r = CliRunner().invoke(main, [flag, etcd.endpoint, "list-machines", "--no-legend"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("01234567...\t")


@pytest.mark.parametrize("envvar", ["VULCANO_ETCD_ENDPOINTS", "VULCANO_ENDPOINT"])
def test_both_environment_variables_name_the_cluster(
    envvar: str, etcd: Etcd, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    r = CliRunner().invoke(main, ["list-machines", "--full"], env={envvar: etcd.endpoint})
    assert r.exit_code == 0, r.output
    assert MACHINE.id in r.output


def test_flag_wins_over_the_environment(etcd: Etcd, client: etcd3.Etcd3Client) -> None:
    announce(client)
    r = CliRunner().invoke(
        main,
        ["--etcd-endpoints", etcd.endpoint, "list-machines"],
        env={"VULCANO_ETCD_ENDPOINTS": "ftp://x"},
    )
    assert r.exit_code == 0, r.output


def test_help_names_etcd_endpoints_first_and_the_alias() -> None:
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "--etcd-endpoints, --endpoint" in r.output


def test_version_prints_the_package_version() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and version("vulcano") in r.output


def test_version_and_help_need_no_cluster() -> None:
    for args in (["--endpoint", "ftp://x", "--version"], ["--endpoint", "ftp://x", "cat", "-h"]):
        assert CliRunner().invoke(main, args).exit_code == 0
