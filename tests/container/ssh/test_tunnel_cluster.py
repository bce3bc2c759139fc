"""The whole path in test namespaces: an agent on a test host publishes its sshd's host
keys; from the root namespace, which has no route to the cluster, `vulcano --tunnel`
submits, starts, lists, shows status and follows the journal of a unit through that
host's sshd, and `exec --all` reaches the machine through it with its keys pinned."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from container.services import journal
from container.services.cluster import Cluster
from container.ssh.settings import SSHSettings
from tests.conftest import require_root
from tests.container.ssh.conftest import Invoke, cli, require_sshd
from vulcano.lab import sshd
from vulcano.lab.forward import PortForward
from vulcano.lab.netns import REPO, TestHost, Underlay
from vulcano.lab.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
TICKER = "[Service]\nExecStart=/bin/sh -c 'while :; do echo tick; sleep 0.3; done'\n"


@dataclass
class Remote:
    net: Underlay
    host: TestHost
    server: sshd.Sshd
    forward: PortForward  # root namespace loopback → the host's sshd
    vulcano: Invoke
    tunnel: str


@pytest.fixture
def remote(tmp_path: Path, state_dir: Path, container_key: str) -> Iterator[Remote]:
    require_root()
    require_sshd()
    with Underlay(tmp_path / "underlay") as net:
        host = net.add_host()
        with sshd.sshd_in_namespace(
            tmp_path / "sshd", host.nsenter([]), host.ip, [container_key]
        ) as server:
            forward = host.forward(22)
            try:
                host.start_agent("--no-overlay", "--ssh-host-key-dir", str(server.base))
                tunnel = f"root@{forward.address}"
                vulcano = cli(state_dir, None, "--endpoint", net.etcd_endpoint, "--tunnel", tunnel)
                yield Remote(net, host, server, forward, vulcano, tunnel)
            finally:
                forward.close()


def listed(remote: Remote, *args: str) -> str:
    result = remote.vulcano(*args)
    assert result.exit_code == 0, result.output
    return result.output


def test_units_are_submitted_started_and_listed_through_the_tunnel(
    remote: Remote, tmp_path: Path
) -> None:
    machine = remote.host.machine_id
    wait_for(lambda: machine[:8] in listed(remote, "list-machines"), 30, "machine registered")
    unit = tmp_path / "ticker.service"
    unit.write_text(TICKER)
    listed(remote, "submit", str(unit))
    assert "ticker.service" in listed(remote, "list-unit-files")
    listed(remote, "start", "ticker")
    units = listed(remote, "list-units", "--no-legend")
    assert units.split()[:4] == [
        "ticker.service",
        f"{machine[:8]}.../{remote.host.ip}",
        "active",
        "running",
    ]
    status = listed(remote, "status", "ticker")
    assert "active" in status and machine[:8] in status
    wait_for(lambda: "tick" in listed(remote, "journal", "ticker"), 30, "journal lines")


def test_journal_follow_streams_through_the_tunnel_and_closes_it(
    remote: Remote, tmp_path: Path, settings: SSHSettings
) -> None:
    unit = tmp_path / "ticker.service"
    unit.write_text(TICKER)
    wait_for(lambda: remote.host.machine_id[:8] in listed(remote, "list-machines"), 30, "agent")
    listed(remote, "start", str(unit))
    cluster = Cluster(remote.net.etcd_endpoint, tunnel=remote.tunnel, ssh=settings)
    seen: list[str] = []
    try:
        tail = journal.read_journal(cluster, "ticker.service", 0)
        follow = journal.follow_journal(
            cluster, "ticker.service", tail.seq, from_revision=tail.revision
        )
        for line in follow:  # lines arrive as they are published
            seen.append(line)
            if len(seen) == 3:
                break
        follow.close()  # as on Ctrl-C: the watch is cancelled
        tunnel = cluster._tunnel
        assert tunnel is not None
    finally:
        cluster.close()
    assert seen == ["tick"] * 3
    assert not tunnel.connection.transport.is_active()
    assert not tunnel._open  # every forwarded connection was closed


def test_exec_reaches_the_machine_through_the_tunnel_host_with_its_keys_pinned(
    remote: Remote, state_dir: Path, tmp_path: Path
) -> None:
    wait_for(lambda: remote.host.machine_id[:8] in listed(remote, "list-machines"), 30, "agent")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {remote.host.ip}\n    ProxyJump {remote.tunnel}\n")
    result = remote.vulcano(
        "--ssh-config", str(config), "exec", "--all", "--", "echo", "$SSH_CONNECTION"
    )
    assert result.exit_code == 0, result.output
    prefix = remote.host.machine_id[:8]
    lines = result.output.splitlines()
    assert lines[0].startswith(prefix) and lines[0].endswith(f"{remote.host.ip} 22")
    assert lines[1] == f"{prefix} exit 0"
    # without a config, --tunnel's host is the way to the machine, as in fleetctl
    plain = remote.vulcano("ssh", remote.host.machine_id[:8], "--", "echo", "$SSH_CONNECTION")
    assert plain.exit_code == 0, plain.output
    assert plain.output.strip().endswith(f"{remote.host.ip} 22")
    # the machine's key came from its record: only the tunnel host was trusted on first use
    known = (state_dir / "known_hosts").read_text()
    assert remote.forward.address.split(":")[1] in known and remote.host.ip not in known


def test_journal_follow_in_the_cli_ends_on_ctrl_c_and_leaves_no_session(
    remote: Remote, tmp_path: Path, state_dir: Path
) -> None:
    unit = tmp_path / "ticker.service"
    unit.write_text(TICKER)
    wait_for(lambda: remote.host.machine_id[:8] in listed(remote, "list-machines"), 30, "agent")
    listed(remote, "start", str(unit))
    sessions_before = remote.server.log().count("Connection closed by")
    argv = [sys.executable, "-m", "container", "--state-dir", str(state_dir)]
    argv += ["--endpoint", remote.net.etcd_endpoint, "--tunnel", remote.tunnel]
    follow = subprocess.Popen(
        [*argv, "journal", "-f", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    try:
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in range(15)]  # 10 of the tail, then new ones
        assert lines[-1] == b"tick\n"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(15) == 1  # click's "Aborted!"
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
        for pipe in (follow.stdout, follow.stderr):
            if pipe is not None:
                pipe.close()
    # the tunnel's SSH connection was closed (sshd logs it), not left open behind us
    wait_for(
        lambda: remote.server.log().count("Connection closed by") > sessions_before,
        15,
        "sshd to see the tunnel close",
    )
