"""`vulcano-agent` answers --version and shares the `vulcano` CLI's endpoint option names."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from vulcano.lab import services

NO_ENDPOINT_ENV = {"VULCANO_CONFIG": "", "VULCANO_ETCD_ENDPOINTS": "", "VULCANO_ENDPOINT": ""}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version_is_the_vulcano_package_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vulcano-agent, version {version('vulcano')}"


def test_run_takes_endpoint_as_an_alias_of_etcd_endpoints(
    runner: CliRunner, tmp_path: Path
) -> None:
    # a bad value reaches the endpoint check: the alias sets the same field
    args = ["run", "--state-dir", str(tmp_path / "s"), "--public-ip", "10.0.0.1"]
    result = runner.invoke(main, [*args, "--endpoint", "gopher://e"], env=NO_ENDPOINT_ENV)
    assert result.exit_code == 1
    assert "--etcd-endpoints: etcd endpoint 'gopher://e': scheme must be http" in result.output
    assert not (tmp_path / "s").exists()


def test_run_reads_the_vulcano_cli_endpoint_variable(runner: CliRunner, tmp_path: Path) -> None:
    env = {**NO_ENDPOINT_ENV, "VULCANO_ENDPOINT": "gopher://e"}
    args = ["run", "--state-dir", str(tmp_path / "s"), "--public-ip", "10.0.0.1"]
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 1
    assert "VULCANO_ENDPOINT: etcd endpoint 'gopher://e': scheme must be http" in result.output


def test_network_init_takes_endpoint_and_either_variable(
    runner: CliRunner, etcd: services.Etcd
) -> None:
    init = ["network", "init", "--network", "10.244.0.0/16"]
    first = runner.invoke(main, [*init, "--endpoint", etcd.endpoint], env=NO_ENDPOINT_ENV)
    assert first.exit_code == 0 and first.output.startswith("initialised"), first.output
    for var in ("VULCANO_ETCD_ENDPOINTS", "VULCANO_ENDPOINT"):
        again = runner.invoke(main, init, env={**NO_ENDPOINT_ENV, var: etcd.endpoint})
        assert again.exit_code == 0 and again.output.startswith("unchanged"), again.output
