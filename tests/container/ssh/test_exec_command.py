"""`vulcano exec` on many real sshds: every host reported (output, exit status), one whose
command fails and one that is unreachable included, and a non-zero exit naming them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest

from tests.container.conftest import announce
from tests.container.ssh.conftest import cli, require_sshd, ssh_config_for
from vulcano.lab import sshd
from vulcano.lab.services import Etcd
from vulcano.records import Machine

pytestmark = pytest.mark.root

ADDRESSES = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
DEAD = "127.0.0.19"
COMMAND = ["--", "echo", "on-$VULCANO_TEST_HOST;", "test", "$VULCANO_TEST_HOST", "!=", "1"]


@pytest.fixture
def servers(tmp_path: Path, container_key: str) -> Iterator[list[sshd.Sshd]]:
    require_sshd()
    with sshd.sshd_servers(tmp_path / "hosts", ADDRESSES, [container_key]) as found:
        yield found


def machine(index: int, server: sshd.Sshd | None, **metadata: str) -> Machine:
    return Machine(
        id=f"m{index}" + "0" * 30,
        hostname=f"host{index}",
        public_ip=server.host if server else DEAD,
        metadata=metadata,
        ssh_host_keys=tuple(server.host_key_lines()) if server else (),
    )


@pytest.fixture
def fleet(
    servers: list[sshd.Sshd], client: etcd3.Etcd3Client, tmp_path: Path
) -> tuple[list[Machine], Path]:
    """Three machines with sshds (host keys in their records) and one that is down."""
    machines = [machine(i, s, role="web" if i < 2 else "db") for i, s in enumerate(servers)]
    machines.append(machine(3, None, role="db"))
    for m in machines:
        announce(client, m)
    config = ssh_config_for(
        tmp_path / "ssh_config", servers, f"Host {DEAD}", f"    Port {sshd.free_closed_port(DEAD)}"
    )
    return machines, config


def test_exec_all_reports_every_host_and_fails_naming_the_failed_and_unreachable(
    fleet: tuple[list[Machine], Path], etcd: Etcd, state_dir: Path
) -> None:
    _, config = fleet
    result = cli(state_dir, etcd, "--ssh-config", str(config))("exec", "--all", *COMMAND)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[:6] == [
        "m0000000 on-0",
        "m0000000 exit 0",
        "m1000000 on-1",
        "m1000000 exit 1",
        "m2000000 on-2",
        "m2000000 exit 0",
    ]
    assert lines[6].startswith(
        f"m3000000 unreachable: machine m3000000... ({DEAD}): cannot connect to {DEAD}:"
    )
    assert lines[7:] == ["Error: 2 of 4 hosts failed: m1000000 (exit 1), m3000000 (unreachable)"]
    assert "Connection refused" in lines[6]
    # the machines' keys were pinned from their records: nothing trusted on first use
    assert not (state_dir / "known_hosts").exists()


def test_exec_on_chosen_machines_succeeds_when_every_one_does(
    fleet: tuple[list[Machine], Path], etcd: Etcd, state_dir: Path
) -> None:
    _, config = fleet
    vulcano = cli(state_dir, etcd, "--ssh-config", str(config))
    result = vulcano("exec", "--machine", "m0", "--machine", "m2000000...", *COMMAND)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "m0000000 on-0",
        "m0000000 exit 0",
        "m2000000 on-2",
        "m2000000 exit 0",
    ]


def test_exec_by_metadata_with_json_output(
    fleet: tuple[list[Machine], Path], etcd: Etcd, state_dir: Path
) -> None:
    _, config = fleet
    vulcano = cli(state_dir, etcd, "--ssh-config", str(config))
    result = vulcano("exec", "--metadata", "role=web", "--json", *COMMAND)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(r["machine"][:2], r["exit_status"], r["output"]) for r in records] == [
        ("m0", 0, "on-0\n"),
        ("m1", 1, "on-1\n"),
    ]


@pytest.mark.parametrize(
    ("args", "says", "code"),
    [
        (["exec", "--", "true"], "exactly one of --all", 2),
        (["exec", "--all", "--machine", "m0", "--", "true"], "exactly one of", 2),
        (["exec", "--machine", "nosuch", "--", "true"], "no machine 'nosuch'", 1),
        (["exec", "--machine", "m", "--", "true"], "is ambiguous", 1),
        (["exec", "--metadata", "role", "--", "true"], "'role' is not key=value", 2),
        (["exec", "--metadata", "role=none", "--", "true"], "no machine matches", 1),
        (["exec", "--all"], "Missing argument", 2),
    ],
)
def test_bad_exec_input_is_named_and_runs_nothing(
    fleet: tuple[list[Machine], Path],
    etcd: Etcd,
    state_dir: Path,
    args: list[str],
    says: str,
    code: int,
) -> None:
    _, config = fleet
    result = cli(state_dir, etcd, "--ssh-config", str(config))(*args)
    assert result.exit_code == code, result.output
    assert says in result.output


def test_a_machine_that_published_no_host_keys_is_trusted_on_first_use(
    servers: list[sshd.Sshd], client: etcd3.Etcd3Client, etcd: Etcd, state_dir: Path, tmp_path: Path
) -> None:
    bare = dataclasses.replace(machine(0, servers[0]), ssh_host_keys=())  # an older agent
    announce(client, bare)
    config = ssh_config_for(tmp_path / "ssh_config", servers)
    result = cli(state_dir, etcd, "--ssh-config", str(config))("exec", "--all", *COMMAND)
    assert result.exit_code == 0, result.output
    known = (state_dir / "known_hosts").read_text()
    assert known.startswith(f"[{servers[0].host}]:{servers[0].port} ssh-ed25519 ")
