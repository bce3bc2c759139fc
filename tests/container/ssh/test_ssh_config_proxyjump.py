"""An OpenSSH client config is honoured: User, Port, HostName, IdentityFile and ProxyJump
(through a real jump sshd), with no ssh-agent anywhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from container.ssh.connection import connect
from container.ssh.destinations import Destination, resolve
from container.ssh.errors import AuthenticationFailed, HostUnreachable
from container.ssh.settings import SSHSettings
from tests.container.ssh.conftest import require_sshd
from vulcano.lab import sshd

pytestmark = pytest.mark.root


@pytest.fixture
def other_key(tmp_path: Path) -> tuple[Path, str]:
    """A key that is not the container's: only an IdentityFile line can offer it."""
    path = tmp_path / "keys" / "id_inner"
    path.parent.mkdir()
    return path, sshd.keygen(path, "ed25519", "inner")


@pytest.fixture
def jump_and_target(
    tmp_path: Path, container_key: str, other_key: tuple[Path, str]
) -> Iterator[tuple[sshd.Sshd, sshd.Sshd]]:
    """A jump host that lets the container's key in and logs every forward it opens, and
    a target that accepts only the other key."""
    require_sshd()
    with (
        sshd.sshd_server(
            tmp_path / "jump", [container_key], "127.0.0.31", extra=["LogLevel DEBUG1"]
        ) as jump,
        sshd.sshd_server(tmp_path / "target", [other_key[1]], "127.0.0.32") as target,
    ):
        yield jump, target


def write_config(tmp_path: Path, jump: sshd.Sshd, target: sshd.Sshd, key: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        f"Host bastion\n    HostName {jump.host}\n    Port {jump.port}\n    User root\n\n"
        f"Host inner\n    HostName {target.host}\n    Port {target.port}\n"
        f"    User root\n    IdentityFile {key}\n    ProxyJump bastion\n"
    )
    return path


def test_proxyjump_and_identityfile_from_the_config_reach_the_target(
    jump_and_target: tuple[sshd.Sshd, sshd.Sshd],
    other_key: tuple[Path, str],
    state_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent to fall back on
    jump, target = jump_and_target
    config = write_config(tmp_path, jump, target, other_key[0])
    settings = SSHSettings(state_dir=state_dir, timeout=5.0, config_file=config)
    endpoint = resolve(Destination("inner"), settings.ssh_config)
    with connect(endpoint, settings) as connection:
        result = connection.run("echo through")
    assert result.output == b"through\n"
    # the jump host opened the forward to the target: the path really went through it
    assert f"target {target.host} port {target.port}" in jump.log().replace("\r", "")
    # both hosts were trusted on first use, each under its own name and port
    known = settings.host_key_check.known_hosts
    assert known.keys_for(jump.host, jump.port) and known.keys_for(target.host, target.port)
    assert "SSH_AUTH_SOCK" not in os.environ


def test_without_the_identityfile_the_target_refuses_naming_the_keys_tried(
    jump_and_target: tuple[sshd.Sshd, sshd.Sshd], state_dir: Path, tmp_path: Path
) -> None:
    jump, target = jump_and_target
    config = write_config(tmp_path, jump, target, tmp_path / "no-such-key")
    settings = SSHSettings(state_dir=state_dir, timeout=5.0, config_file=config)
    endpoint = resolve(Destination("inner"), settings.ssh_config)
    with pytest.raises(AuthenticationFailed) as refused:
        connect(endpoint, settings)
    assert f"root@{target.address} accepted none of our keys" in str(refused.value)
    assert str(state_dir / "id_ed25519") in str(refused.value)


def test_a_dead_jump_host_is_named(
    jump_and_target: tuple[sshd.Sshd, sshd.Sshd],
    other_key: tuple[Path, str],
    state_dir: Path,
    tmp_path: Path,
) -> None:
    jump, target = jump_and_target
    config = write_config(tmp_path, jump, target, other_key[0])
    jump.stop()
    settings = SSHSettings(state_dir=state_dir, timeout=5.0, config_file=config)
    with pytest.raises(HostUnreachable, match=f"cannot connect to {jump.address}"):
        connect(resolve(Destination("inner"), settings.ssh_config), settings)
