"""The global SSH flags: fleetctl's names, VULCANO_* variables, layered defaults → env →
flags, bad values refused, and --ssh-timeout bounding a host that never speaks SSH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from container import policy
from container.cli import main
from container.cli.ssh import settings_from
from container.services.provisioning import DEFAULT_STATE_DIR
from tests.container.ssh.conftest import cli
from vulcano.lab.ports import listener
from vulcano.lab.services import Etcd

FLAGS = {
    "tunnel": None,
    "ssh_timeout": policy.SSH_TIMEOUT,
    "request_timeout": policy.REQUEST_TIMEOUT,
    "strict_host_key_checking": True,
    "known_hosts_file": None,
    "ssh_username": None,
    "ssh_config": None,
    "ssh_agent": False,
    "state_dir": DEFAULT_STATE_DIR,
}


def test_the_defaults_are_fleetctls_with_our_state_dir() -> None:
    tunnel, request_timeout, settings = settings_from(dict(FLAGS))
    assert tunnel is None and request_timeout == 3.0
    assert settings.timeout == 10.0 and settings.strict_host_key_checking
    assert settings.known_hosts_path == Path("/var/lib/vulcano/known_hosts")
    assert settings.username is None and settings.default_user == "core"
    assert not settings.allow_agent


def test_the_state_dir_and_known_hosts_come_from_the_environment_and_flags_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VULCANO_STATE_DIR", str(tmp_path / "env-state"))
    runner = CliRunner()
    from_env = runner.invoke(main, ["ssh-forget", "192.0.2.1"])
    assert f"is not in {tmp_path / 'env-state' / 'known_hosts'}" in from_env.output
    flag = runner.invoke(main, ["--state-dir", str(tmp_path / "flag"), "ssh-forget", "192.0.2.1"])
    assert f"is not in {tmp_path / 'flag' / 'known_hosts'}" in flag.output
    monkeypatch.setenv("VULCANO_KNOWN_HOSTS_FILE", str(tmp_path / "kh"))
    chosen = runner.invoke(main, ["ssh-forget", "192.0.2.1"])
    assert f"is not in {tmp_path / 'kh'}" in chosen.output
    assert chosen.exit_code == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ssh-timeout", "soon"], "--ssh-timeout"),
        (["--ssh-timeout", "0"], "--ssh-timeout"),
        (["--request-timeout", "-1"], "--request-timeout"),
        (["--strict-host-key-checking", "maybe"], "--strict-host-key-checking"),
        (["--tunnel", "root@:22"], "--tunnel"),
    ],
)
def test_bad_global_flags_are_usage_errors(args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, [*args, "list-machines"])
    assert result.exit_code == 2
    assert says in result.output


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A loopback port that takes connections and never says a word (no SSH banner)."""
    with listener(backlog=8) as server:
        yield server.getsockname()[1]


def test_a_tunnel_host_that_never_speaks_ssh_fails_within_the_ssh_timeout(
    silent_host: int, etcd: Etcd, state_dir: Path
) -> None:
    result = cli(state_dir, etcd, "--ssh-timeout", "1", "--tunnel", f"127.0.0.1:{silent_host}")(
        "list-machines"
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: tunnel host 127.0.0.1:{silent_host}: ")
    assert "did not complete an SSH handshake within 1s" in result.output
