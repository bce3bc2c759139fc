"""known_hosts in OpenSSH's format: ports, hashed names, forgetting a host (no I/O but files)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from container.ssh.hostkeys import HostKey, algorithms_for
from container.ssh.knownhosts import KnownHosts, host_label
from vulcano.lab.sshkeys import keygen


def key(comment: str = "k", key_type: str = "ed25519") -> HostKey:
    keygen.cache_clear()
    return HostKey.from_line(keygen(key_type, comment=comment))


@pytest.mark.parametrize(
    ("host", "port", "label"),
    [("10.0.0.1", 22, "10.0.0.1"), ("10.0.0.1", 2222, "[10.0.0.1]:2222"), ("h", 22, "h")],
)
def test_a_host_is_named_as_openssh_names_it(host: str, port: int, label: str) -> None:
    assert host_label(host, port) == label


def test_keys_are_recorded_per_host_and_port_in_a_0600_file(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    a, b = key("a"), key("b")
    known.add("10.0.0.1", 22, a)
    known.add("10.0.0.1", 2222, b)
    assert known.keys_for("10.0.0.1", 22) == [a]
    assert known.keys_for("10.0.0.1", 2222) == [b]
    assert known.keys_for("10.0.0.2", 22) == []
    assert stat.S_IMODE((tmp_path / "known_hosts").stat().st_mode) == 0o600
    # ssh-keygen finds what we wrote
    found = subprocess.run(
        ["ssh-keygen", "-F", "[10.0.0.1]:2222", "-f", str(known.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert b.line.split()[1] in found


def test_hashed_entries_written_by_ssh_keygen_are_understood(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    k = key()
    known.add("192.0.2.7", 22, k)
    subprocess.run(["ssh-keygen", "-H", "-f", str(known.path)], check=True, capture_output=True)
    assert known.path.read_text().startswith("|1|")
    assert known.keys_for("192.0.2.7", 22) == [k]
    assert known.forget("192.0.2.7", 22) == 1
    assert known.keys_for("192.0.2.7", 22) == []


def test_forget_removes_only_that_host_and_keeps_the_others_on_a_shared_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "known_hosts"
    k, other = key("k"), key("o")
    path.write_text(f"# mine\nh1,h2 {k.line}\n[h1]:2222 {other.line}\n")
    known = KnownHosts(path)
    assert known.forget("h1", 22) == 1
    assert path.read_text() == f"# mine\nh2 {k.line}\n[h1]:2222 {other.line}\n"
    assert known.keys_for("h2", 22) == [k]
    assert known.forget("nosuch", 22) == 0


def test_revoked_and_wildcard_lines(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    k, bad = key("k"), key("bad")
    path.write_text(f"10.1.* {k.line}\n@revoked * {bad.line}\n@cert-authority * {k.line}\n")
    known = KnownHosts(path)
    assert known.keys_for("10.1.2.3", 22) == [k]
    assert known.keys_for("10.2.2.3", 22) == []
    assert known.revoked("anything", 22, bad)
    assert not known.revoked("anything", 22, k)


def test_only_the_algorithms_of_known_key_types_are_offered() -> None:
    rsa = HostKey("ssh-rsa", b"x")
    ed = HostKey("ssh-ed25519", b"y")
    assert algorithms_for([ed, rsa]) == ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256")
    assert algorithms_for([]) == ()
