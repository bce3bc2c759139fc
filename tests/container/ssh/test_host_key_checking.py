"""Host keys against real sshds: trust on first use then strict, a swapped key refused with
both fingerprints, pinning by machine record, and accepting a new key deliberately."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.ssh.connection import connect
from container.ssh.destinations import Destination, resolve
from container.ssh.errors import HostKeyChanged
from container.ssh.hostkeys import HostKey
from container.ssh.settings import SSHSettings
from tests.container.ssh.conftest import cli
from vulcano.lab.sshd import Sshd
from vulcano.lab.sshkeys import keygen

pytestmark = pytest.mark.root


def endpoint_of(server: Sshd, settings: SSHSettings, pinned: list[HostKey] | None = None):  # type: ignore[no-untyped-def]
    return resolve(
        Destination(server.host, "root", server.port),
        settings.ssh_config,
        pinned=pinned or [],
        name=f"test host {server.port}",
    )


def hostname_over_ssh(server: Sshd, settings: SSHSettings, **kw: object) -> str:
    with connect(endpoint_of(server, settings, **kw), settings) as c:  # type: ignore[arg-type]
        result = c.run("echo ok-$((6*7))")
    assert result.exit_status == 0
    return result.output.decode().strip()


def test_first_use_records_the_key_then_it_is_held_to_it(
    server: Sshd, settings: SSHSettings
) -> None:
    assert not settings.known_hosts_path.exists()
    assert hostname_over_ssh(server, settings) == "ok-42"
    recorded = settings.host_key_check.known_hosts.keys_for(server.host, server.port)
    assert [k.fingerprint for k in recorded] == [server.fingerprints()["ed25519"]]
    assert settings.known_hosts_path.stat().st_mode & 0o777 == 0o600
    assert hostname_over_ssh(server, settings) == "ok-42"  # known now: accepted again
    assert len(settings.known_hosts_path.read_text().splitlines()) == 1


def test_a_key_swapped_under_the_same_address_is_refused_naming_both_fingerprints(
    server: Sshd, settings: SSHSettings
) -> None:
    hostname_over_ssh(server, settings)
    old = server.fingerprints()["ed25519"]
    server.swap_host_keys()
    new = server.fingerprints()["ed25519"]
    with pytest.raises(HostKeyChanged) as refused:
        hostname_over_ssh(server, settings)
    message = str(refused.value)
    assert old in message and new in message
    assert f"test host {server.port}" in message
    assert f"vulcano ssh-forget {server.host}:{server.port}" in message
    # nothing was recorded: the old key stays the one we trust
    known = settings.host_key_check.known_hosts.keys_for(server.host, server.port)
    assert [k.fingerprint for k in known] == [old]


def test_the_new_key_is_accepted_after_ssh_forget(
    server: Sshd, settings: SSHSettings, state_dir: Path
) -> None:
    hostname_over_ssh(server, settings)
    server.swap_host_keys()
    forget = cli(state_dir)("ssh-forget", f"{server.host}:{server.port}")
    assert forget.exit_code == 0, forget.output
    assert "forgot 1 key" in forget.output
    fresh = SSHSettings(state_dir=state_dir, timeout=5.0)
    assert hostname_over_ssh(server, fresh) == "ok-42"
    known = fresh.host_key_check.known_hosts.keys_for(server.host, server.port)
    assert [k.fingerprint for k in known] == [server.fingerprints()["ed25519"]]


def test_ssh_forget_of_an_unknown_host_fails(state_dir: Path) -> None:
    result = cli(state_dir)("ssh-forget", "192.0.2.1")
    assert result.exit_code == 1
    assert "192.0.2.1 is not in" in result.output
    bad = cli(state_dir)("ssh-forget", "host:notaport")
    assert bad.exit_code == 2


def test_strict_checking_off_accepts_a_changed_key_and_records_it(
    server: Sshd, state_dir: Path
) -> None:
    lax = SSHSettings(state_dir=state_dir, timeout=5.0, strict_host_key_checking=False)
    hostname_over_ssh(server, lax)
    server.swap_host_keys()
    assert hostname_over_ssh(server, lax) == "ok-42"
    known = lax.host_key_check.known_hosts.keys_for(server.host, server.port)
    assert [k.fingerprint for k in known] == [server.fingerprints()["ed25519"]]


def test_keys_pinned_by_machine_record_need_no_known_hosts_entry(
    server: Sshd, settings: SSHSettings
) -> None:
    pinned = [HostKey.from_line(line) for line in server.host_key_lines()]
    assert hostname_over_ssh(server, settings, pinned=pinned) == "ok-42"
    assert not settings.known_hosts_path.exists()  # nothing to trust on first use


def test_a_pinned_ecdsa_key_makes_the_host_show_its_ecdsa_key(
    server: Sshd, settings: SSHSettings
) -> None:
    ecdsa = [HostKey.from_line(line) for line in server.host_key_lines() if "ecdsa" in line]
    assert hostname_over_ssh(server, settings, pinned=ecdsa) == "ok-42"


def test_a_host_that_is_not_the_pinned_machine_is_refused(
    server: Sshd, settings: SSHSettings
) -> None:
    pinned = [HostKey.from_line(line) for line in server.host_key_lines()]
    server.swap_host_keys()
    with pytest.raises(HostKeyChanged) as refused:
        hostname_over_ssh(server, settings, pinned=pinned)
    message = str(refused.value)
    assert pinned[0].fingerprint in message
    assert server.fingerprints()["ed25519"] in message
    assert "machine record" in message
    assert not settings.known_hosts_path.exists()


def test_a_host_that_no_longer_has_a_key_of_the_pinned_type_is_refused(
    server: Sshd, settings: SSHSettings
) -> None:
    rsa = HostKey.from_line(keygen("rsa", 3072, "old-rsa"))
    with pytest.raises(HostKeyChanged) as refused:
        hostname_over_ssh(server, settings, pinned=[rsa])
    assert (
        f"offers no host key of the types its machine record has (ssh-rsa {rsa.fingerprint})"
        in str(refused.value)
    )
