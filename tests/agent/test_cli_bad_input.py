"""Every command refuses bad input with a message naming what is wrong, changing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.statedir import StateLock
from vulcano.etcd import connect
from vulcano.lab import services


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(main, list(args), env={k: "" for k in ("VULCANO_CONFIG",)})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--public-ip", "10.0.0.1"], "no etcd endpoints"),
        (["--etcd-endpoints", "http://e:2379"], "no public IP"),
        (["--etcd-endpoints", "e", "--public-ip", "nope"], "--public-ip: 'nope' is not an IPv4"),
        (["--etcd-endpoints", "e", "--public-ip", "10.0.0.1", "--ttl", "0"], "--ttl: 0 must be"),
        (["--etcd-endpoints", "e", "--public-ip", "10.0.0.1", "--metadata", "x"], "not key=value"),
        (
            ["--etcd-endpoints", "e", "--public-ip", "10.0.0.1", "--machine-id", "../x"],
            "--machine-id",
        ),
        (["--etcd-endpoints", "gopher://e", "--public-ip", "10.0.0.1"], "scheme must be http"),
        (
            ["--etcd-endpoints", "e", "--public-ip", "10.0.0.1", "--subnet-ttl", "x"],
            "--subnet-ttl: 'x'",
        ),
    ],
)
def test_run_refuses_bad_flags(
    runner: CliRunner, args: list[str], message: str, tmp_path: Path
) -> None:
    result = invoke(runner, "run", "--state-dir", str(tmp_path / "s"), *args)
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "s").exists()  # nothing was started or written


def test_run_refuses_a_bad_config_file(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('public-ip = "10.0.0.1"\nwhatever = 1\n')
    result = invoke(runner, "run", "--config", str(file), "--etcd-endpoints", "e")
    assert result.exit_code == 1
    assert "unknown setting 'whatever'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network", "10.244.0.0/33"], "not an IPv4 CIDR"),
        (["--network", "10.244.0.1/16"], "host bits set"),
        (["--network", "10.244.0.0/16", "--subnet-len", "x"], "subnet_len: 'x'"),
        (["--network", "10.244.0.0/24", "--subnet-len", "24"], "must be longer"),
        (["--network", "10.244.0.0/16", "--subnet-len", "29"], "too small"),
        (["--network", "10.244.0.0/16", "--vni", "0"], "vni"),
        (["--network", "10.244.0.0/16", "--port", "0"], "port"),
        (["--network", "10.244.0.0/16", "--subnet-min", "10.245.0.0"], "outside the network"),
        (["--network", "127.0.0.0/16"], "reserved"),
        (["--network", "10.244.0.0/16", "--prefix", "vulcano"], "keyspace prefix must start"),
        (["--network", "10.244.0.0/16", "--subnet-max", "10.244.0.77"], "subnet_max"),
    ],
)
def test_network_init_refuses_invalid_configs(
    runner: CliRunner, etcd: services.Etcd, args: list[str], message: str
) -> None:
    result = invoke(runner, "network", "init", "--etcd-endpoints", etcd.endpoint, *args)
    assert result.exit_code == 1
    assert message in result.output
    client = connect(etcd.endpoint)
    try:
        assert client.get("/vulcano/network/config")[0] is None
    finally:
        client.close()


def test_network_init_refuses_a_network_overlapping_the_etcd_host(runner: CliRunner) -> None:
    result = invoke(
        runner,
        "network",
        "init",
        "--etcd-endpoints",
        "http://10.1.2.3:2379",
        "--network",
        "10.0.0.0/8",
    )
    assert result.exit_code == 1
    assert "overlaps the underlay address 10.1.2.3" in result.output


def test_network_init_refuses_a_network_overlapping_a_node(
    runner: CliRunner, etcd: services.Etcd
) -> None:
    client = connect(etcd.endpoint)
    try:
        record = {
            "id": "m",
            "hostname": "h",
            "public_ip": "10.20.0.5",
            "metadata": {},
            "version": 1,
        }
        client.put("/vulcano/machines/m", json.dumps(record))
        result = invoke(
            runner,
            "network",
            "init",
            "--etcd-endpoints",
            etcd.endpoint,
            "--network",
            "10.20.0.0/16",
        )
        assert result.exit_code == 1
        assert "overlaps the underlay address 10.20.0.5" in result.output
        assert client.get("/vulcano/network/config")[0] is None
    finally:
        client.close()


def test_network_init_is_idempotent_and_refuses_silent_changes(
    runner: CliRunner, etcd: services.Etcd
) -> None:
    base = ["network", "init", "--etcd-endpoints", etcd.endpoint, "--subnet-len", "24"]
    first = invoke(runner, *base, "--network", "10.244.0.0/16")
    assert first.exit_code == 0 and first.output.startswith("initialised")
    same = invoke(runner, *base, "--network", "10.244.0.0/16")
    assert same.exit_code == 0 and same.output.startswith("unchanged")
    other = invoke(runner, *base, "--network", "10.245.0.0/16")
    assert (
        other.exit_code == 1
        and "already initialised" in other.output
        and "--replace" in other.output
    )
    client = connect(etcd.endpoint)
    try:
        client.put("/vulcano/network/subnets/10.244.1.0-24", "{}")
        leased = invoke(runner, *base, "--network", "10.245.0.0/16", "--replace")
        assert leased.exit_code == 1
        assert "leased subnet(s) 10.244.1.0/24 would fall outside it" in leased.output
        config = json.loads(client.get("/vulcano/network/config")[0])
        assert config["network"] == "10.244.0.0/16"
        # a change every leased subnet survives is made while they are leased
        vni = invoke(runner, *base, "--network", "10.244.0.0/16", "--vni", "7", "--replace")
        assert vni.exit_code == 0 and vni.output.startswith("replaced"), vni.output
        assert json.loads(client.get("/vulcano/network/config")[0])["vni"] == 7
        client.delete("/vulcano/network/subnets/10.244.1.0-24")
        replaced = invoke(runner, *base, "--network", "10.245.0.0/16", "--replace")
        assert replaced.exit_code == 0 and replaced.output.startswith("replaced")
        config = json.loads(client.get("/vulcano/network/config")[0])
        assert config["network"] == "10.245.0.0/16"
    finally:
        client.close()


def test_network_init_requires_its_options(runner: CliRunner) -> None:
    result = invoke(runner, "network", "init", "--network", "10.244.0.0/16")
    assert result.exit_code == 2
    assert "--etcd-endpoints" in result.output


def test_network_down_refuses_an_empty_state_dir(runner: CliRunner) -> None:
    result = invoke(runner, "network", "down", "--state-dir", " ")
    assert result.exit_code == 1
    assert "--state-dir: empty path" in result.output


def test_network_down_refuses_while_an_agent_runs(runner: CliRunner, tmp_path: Path) -> None:
    lock = StateLock(tmp_path)
    lock.acquire()
    try:
        result = invoke(runner, "network", "down", "--state-dir", str(tmp_path))
    finally:
        lock.release()
    assert result.exit_code == 1
    assert "an agent is running with" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sandbox", "create", "-bad"], "No such option"),
        (["sandbox", "create", "a b"], "sandbox name 'a b'"),
        (["sandbox", "create", "x" * 64], "sandbox name"),
        (["sandbox", "delete", "nope"], "no sandbox 'nope'"),
        (["sandbox", "create", "ok"], "no agent state in"),
        (["sandbox", "create", "ok", "--state-dir", ""], "--state-dir: empty path"),
    ],
)
def test_sandbox_commands_refuse_bad_input(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    if "--state-dir" not in args:
        args = [*args, "--state-dir", str(tmp_path)]
    result = invoke(runner, *args)
    assert result.exit_code in (1, 2)
    assert message in result.output


def test_sandbox_list_on_an_empty_node(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "sandbox", "list", "--state-dir", str(tmp_path))
    assert result.exit_code == 0 and result.output == "NAME\tADDRESS\n"
    assert (
        invoke(runner, "sandbox", "list", "--no-legend", "--state-dir", str(tmp_path)).output == ""
    )
