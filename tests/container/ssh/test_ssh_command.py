"""`vulcano ssh MACHINE|UNIT -- CMD` against a real sshd: machines by full or short id,
units by where they run, host keys pinned from the machine record, bad names refused."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import etcd3
import pytest

from tests.container.conftest import announce, report
from tests.container.ssh.conftest import cli, ssh_config_for
from vulcano.lab.netns import REPO
from vulcano.lab.services import Etcd
from vulcano.lab.sshd import Sshd
from vulcano.records import Machine, UnitState

pytestmark = pytest.mark.root


def submit(state_dir: Path, etcd: Etcd, where: Path, name: str) -> None:
    (where / name).write_text("[Service]\nExecStart=/bin/sleep 1000\n")
    result = cli(state_dir, etcd)("submit", str(where / name))
    assert result.exit_code == 0, result.output


@pytest.fixture
def machine(server: Sshd, client: etcd3.Etcd3Client) -> Machine:
    record = Machine(
        id="abcdef0123456789abcdef0123456789",
        hostname="node1",
        public_ip=server.host,
        ssh_host_keys=tuple(server.host_key_lines()),
    )
    announce(client, record)
    return record


@pytest.fixture
def config(server: Sshd, tmp_path: Path) -> Path:
    return ssh_config_for(tmp_path / "ssh_config", [server])


def test_a_command_runs_on_a_machine_by_short_id_and_its_exit_status_is_ours(
    machine: Machine, config: Path, etcd: Etcd, state_dir: Path
) -> None:
    vulcano = cli(state_dir, etcd, "--ssh-config", str(config))
    result = vulcano("ssh", "abcdef01", "--", "echo", "hello", "from", "$(hostname)")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("hello from ")
    failed = vulcano("ssh", machine.id, "--", "echo oops >&2; exit 7")
    assert failed.exit_code == 7
    assert "oops" in failed.output
    assert not (state_dir / "known_hosts").exists()  # pinned from the machine record


def test_ssh_to_a_unit_goes_where_it_runs(
    machine: Machine,
    config: Path,
    etcd: Etcd,
    state_dir: Path,
    client: etcd3.Etcd3Client,
    tmp_path: Path,
) -> None:
    submit(state_dir, etcd, tmp_path, "web.service")
    report(client, UnitState("web.service", machine.id, "loaded", "active", "running"))
    result = cli(state_dir, etcd, "--ssh-config", str(config))("ssh", "web", "--", "echo", "hi")
    assert result.exit_code == 0, result.output
    assert result.output == "hi\n"


def test_a_rebuilt_machine_is_refused_naming_both_fingerprints(
    machine: Machine, server: Sshd, config: Path, etcd: Etcd, state_dir: Path
) -> None:
    old = server.fingerprints()["ed25519"]
    server.swap_host_keys()
    result = cli(state_dir, etcd, "--ssh-config", str(config))("ssh", "abcdef01", "--", "true")
    assert result.exit_code == 1
    assert "HOST KEY CHANGED for machine abcdef01..." in result.output
    assert old in result.output and server.fingerprints()["ed25519"] in result.output
    assert "restart its vulcano-agent" in result.output


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("nosuch", "no machine 'nosuch' and no unit nosuch.service in the cluster"),
        ("0123", "no machine '0123' and no unit 0123.service"),
        ("bad..name", "no machine 'bad..name'"),
    ],
)
def test_an_unknown_machine_or_unit_is_named(
    machine: Machine, etcd: Etcd, state_dir: Path, target: str, says: str
) -> None:
    result = cli(state_dir, etcd)("ssh", target, "--", "true")
    assert result.exit_code == 1
    assert says in result.output


def test_a_unit_on_no_machine_is_named(
    machine: Machine, etcd: Etcd, state_dir: Path, tmp_path: Path
) -> None:
    submit(state_dir, etcd, tmp_path, "idle.service")
    result = cli(state_dir, etcd)("ssh", "idle.service", "--", "true")
    assert result.exit_code == 1
    assert "unit idle.service is not on any machine" in result.output


def test_a_machine_whose_sshd_is_down_is_named(
    machine: Machine, server: Sshd, config: Path, etcd: Etcd, state_dir: Path
) -> None:
    server.stop()
    result = cli(state_dir, etcd, "--ssh-config", str(config))("ssh", "abcdef01", "--", "true")
    assert result.exit_code == 1
    assert f"machine abcdef01... ({server.host}): cannot connect to {server.address}" in (
        result.output
    )


def test_without_a_command_a_shell_reads_stdin_and_its_exit_status_is_ours(
    machine: Machine, config: Path, etcd: Etcd, state_dir: Path
) -> None:
    argv = [sys.executable, "-m", "container", "--state-dir", str(state_dir)]
    argv += ["--endpoint", etcd.endpoint, "--ssh-config", str(config), "ssh", "abcdef01"]
    done = subprocess.run(
        argv,
        input="echo from-the-shell\nexit 5\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 5, done.stderr
    assert "from-the-shell" in done.stdout


def test_on_a_terminal_the_shell_gets_a_pty(
    machine: Machine, config: Path, etcd: Etcd, state_dir: Path
) -> None:
    argv = [sys.executable, "-m", "container", "--state-dir", str(state_dir)]
    argv += ["--endpoint", etcd.endpoint, "--ssh-config", str(config), "ssh", "abcdef01"]
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, cwd=REPO, start_new_session=True
    )
    os.close(follower)
    try:
        seen = _read_until(leader, b"# ")  # root's prompt from the remote shell
        os.write(leader, b"tty && echo on-a-$((6*7))-pty; exit 4\n")
        seen += _read_until(leader, None)
        assert proc.wait(30) == 4, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert b"on-a-42-pty" in seen and b"/dev/pts/" in seen


def _read_until(leader: int, marker: bytes | None) -> bytes:
    """What the terminal shows until ``marker`` (None: until the process closes it)."""
    seen = b""
    while marker is None or marker not in seen:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            raise AssertionError(f"terminal silent for 30s after {seen!r}")
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # every follower end closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    return seen
