"""The container's own ed25519 key: made once on first use, 0600, kept across restarts."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from click.testing import CliRunner

from container.cli import main
from container.ssh import keys
from container.ssh.hostkeys import HostKey
from vulcano.sshkeys import parse_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_makes_an_ed25519_key_0600_with_its_public_half(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = keys.ensure_identity(state)
    assert path == state / "id_ed25519"
    assert mode(path) == 0o600
    assert mode(state) == 0o700
    line = keys.public_key_line(state)
    assert parse_key(line).type == "ssh-ed25519"
    assert (state / "id_ed25519.pub").read_text().strip() == line


def test_the_key_survives_a_restart(tmp_path: Path) -> None:
    first = keys.public_key_line(tmp_path)
    private = (tmp_path / "id_ed25519").read_bytes()
    assert keys.public_key_line(tmp_path) == first
    assert (tmp_path / "id_ed25519").read_bytes() == private
    assert keys.load_identity(tmp_path).get_name() == "ssh-ed25519"


def test_a_key_left_readable_by_others_is_made_0600(tmp_path: Path) -> None:
    path = keys.ensure_identity(tmp_path)
    os.chmod(path, 0o644)
    keys.ensure_identity(tmp_path)
    assert mode(path) == 0o600


def test_openssh_reads_the_key_and_agrees_on_its_fingerprint(tmp_path: Path) -> None:
    path = keys.ensure_identity(tmp_path)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert derived[:2] == keys.public_key_line(tmp_path).split()[:2]
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path) + ".pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert HostKey.from_line(keys.public_key_line(tmp_path)).fingerprint == printed


def test_a_missing_public_half_is_made_again_from_the_private_key(tmp_path: Path) -> None:
    line = keys.public_key_line(tmp_path)
    (tmp_path / "id_ed25519.pub").unlink()
    assert keys.public_key_line(tmp_path) == line


def test_ssh_key_prints_the_public_key_and_makes_it_on_first_use(tmp_path: Path) -> None:
    runner = CliRunner()
    state = tmp_path / "fresh"
    first = runner.invoke(main, ["--state-dir", str(state), "ssh-key"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == keys.public_key_line(state)
    assert mode(state / "id_ed25519") == 0o600


def test_ssh_key_names_a_state_dir_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    a_file = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "file"), "ssh-key"])
    assert a_file.exit_code == 1
    assert f"state directory {tmp_path / 'file'} is not a directory" in a_file.output
    under = tmp_path / "file" / "state"
    result = CliRunner().invoke(main, ["--state-dir", str(under), "ssh-key"])
    assert result.exit_code == 1
    assert f"SSH key {under / 'id_ed25519'}: Not a directory" in result.output
