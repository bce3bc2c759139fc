"""Destinations and the ssh config: explicit parts win over the file, the file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.ssh.destinations import (
    DEFAULT_USER,
    Destination,
    load_config,
    parse_destination,
    resolve,
)
from container.ssh.errors import DestinationError

CONFIG = """\
Host bastion
    HostName 127.0.0.5
    User jumper
    Port 2200

Host inner-*
    User alice
    Port 2022
    IdentityFile ~/keys/inner
    ProxyJump bastion

Host chain
    ProxyJump first,jumper2@second:2300

Host *.example
    HostName %h.internal
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("host", Destination("host")),
        ("core@10.0.0.1", Destination("10.0.0.1", "core")),
        ("core@10.0.0.1:2222", Destination("10.0.0.1", "core", 2222)),
        ("[::1]:2222", Destination("::1", None, 2222)),
        ("root@[fe80::1%eth0]", Destination("fe80::1%eth0", "root")),
    ],
)
def test_good_destinations_parse(value: str, expected: Destination) -> None:
    assert parse_destination(value) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("core@", "is not a host"),
        ("host:0", "is not 1-65535"),
        ("host:99999", "is not 1-65535"),
        ("host:ssh", "is not 1-65535"),
        ("bad user@host", "is not a user name"),
        ("host/with/slash", "is not a host"),
        ("[::1", "expected [address]:port"),
    ],
)
def test_bad_destinations_say_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(DestinationError, match=says.replace("[", r"\[")):
        parse_destination(value, "--tunnel")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def test_the_config_sets_user_port_hostname_identity_and_jump(config: Path) -> None:
    endpoint = resolve(Destination("inner-1"), load_config(config))
    assert (endpoint.host, endpoint.port, endpoint.user) == ("inner-1", 2022, "alice")
    assert endpoint.identity_files == (Path("~/keys/inner").expanduser(),)
    assert endpoint.jump is not None
    assert (endpoint.jump.host, endpoint.jump.port, endpoint.jump.user) == (
        "127.0.0.5",
        2200,
        "jumper",
    )
    assert endpoint.jump.jump is None


def test_explicit_parts_win_over_the_config_and_the_config_over_defaults(config: Path) -> None:
    cfg = load_config(config)
    explicit = resolve(Destination("inner-1", "bob", 22), cfg, username="carol")
    assert (explicit.user, explicit.port) == ("bob", 22)
    flag = resolve(Destination("inner-1"), cfg, username="carol")
    assert flag.user == "carol"
    plain = resolve(Destination("10.9.9.9"), cfg)
    assert (plain.host, plain.port, plain.user, plain.jump) == ("10.9.9.9", 22, DEFAULT_USER, None)
    assert resolve(Destination("db.example"), cfg).host == "db.example.internal"


def test_a_proxyjump_chain_is_followed_hop_by_hop(config: Path) -> None:
    endpoint = resolve(Destination("chain"), load_config(config))
    second = endpoint.jump
    assert second is not None and (second.host, second.port, second.user) == (
        "second",
        2300,
        "jumper2",
    )
    assert second.jump is not None and second.jump.host == "first"


def test_a_proxyjump_loop_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(DestinationError, match="longer than"):
        resolve(Destination("a"), load_config(path))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match="nosuch"):
        load_config(tmp_path / "nosuch")
