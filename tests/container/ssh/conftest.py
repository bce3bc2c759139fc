"""SSH fixtures: the container's state dir and key, real sshds that authorize it, and the
`vulcano` CLI pointed at both."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from container.cli import main
from container.ssh import keys
from container.ssh.settings import SSHSettings
from tests.conftest import require
from vulcano.lab import sshd
from vulcano.lab.services import Etcd

Invoke = Callable[..., Result]


def require_sshd() -> None:
    require(sshd.available(), "needs Debian's openssh-server (/usr/sbin/sshd) and ssh-keygen")
    require(os.geteuid() == 0, "needs root: sshd logs in as root with the container's key")


@pytest.fixture(autouse=True)
def log_in_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's sshds have only root to log in as; nodes have core (the default user)."""
    monkeypatch.setenv("VULCANO_SSH_USERNAME", "root")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The container's state directory, with its key made."""
    d = tmp_path / "state"
    keys.ensure_identity(d)
    return d


@pytest.fixture
def container_key(state_dir: Path) -> str:
    return keys.public_key_line(state_dir)


@pytest.fixture
def settings(state_dir: Path) -> SSHSettings:
    return SSHSettings(state_dir=state_dir, timeout=5.0)


@pytest.fixture
def server(tmp_path: Path, container_key: str) -> Iterator[sshd.Sshd]:
    """A real sshd on a loopback port that lets the container's key in as root."""
    require_sshd()
    with sshd.sshd_server(tmp_path / "sshd", [container_key]) as s:
        yield s


def cli(state_dir: Path, etcd: Etcd | None = None, *extra: str) -> Invoke:
    """``vulcano --state-dir … [--endpoint etcd] EXTRA ARGS``, run in-process."""
    runner = CliRunner()
    head = ["--state-dir", str(state_dir), "--ssh-timeout", "5", *extra]
    if etcd is not None:
        head += ["--endpoint", etcd.endpoint]

    def invoke(*args: str) -> Result:
        return runner.invoke(main, [*head, *args], catch_exceptions=False)

    return invoke


def ssh_config_for(path: Path, servers: list[sshd.Sshd], *more: str) -> Path:
    """An ssh config naming each server's port by its address, plus ``more`` lines."""
    lines = [f"Host {s.host}\n    Port {s.port}\n" for s in servers]
    path.write_text("".join(lines) + "".join(f"{line}\n" for line in more))
    return path
