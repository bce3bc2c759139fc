"""What the discovery service accepts as a size and as a member's registration value."""

from __future__ import annotations

import pytest

from appengine.discovery_errors import (
    BadSize,
    InvalidForm,
)
from appengine.discovery_models import (
    is_member_id,
    parse_peers,
    parse_size,
)


@pytest.mark.parametrize(
    ("value", "pairs"),
    [
        ("m0=http://10.0.0.1:2380", [("m0", "http://10.0.0.1:2380")]),
        (
            "m0=http://10.0.0.1:2380,m0=https://m0.example:2380",
            [("m0", "http://10.0.0.1:2380"), ("m0", "https://m0.example:2380")],
        ),
        ("node 1=http://[fd00::1]:2380", [("node 1", "http://[fd00::1]:2380")]),
        ("m=http://h", [("m", "http://h")]),
        ("m=http://h:2380/", [("m", "http://h:2380/")]),
    ],
)
def test_values_etcd_writes_are_accepted(value: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_peers(value) == pairs


@pytest.mark.parametrize(
    "value",
    [
        "",
        "m0",
        "=http://h:1",
        "m0=",
        "m0=http://h:1,",
        "m0=http://h:",
        "m0=http://[::1]:",
        "m0=http://h:65536",
        "m0=http://h:x",
        "m0=http://",
        "m0=unix:///run/etcd.sock",
        "m0=http://h:1/path",
        "m0=http://h:1?q=1",
        "m0=http://h:1#f",
        "m0=http://user@h:1",
        "m0=http://h :1",
        "m\t0=http://h:1",
        "m0=http://h:1\n",
        "x" * 300 + "=http://h:1",
        ",".join(["m=http://h:1"] * 200),
    ],
)
def test_malformed_values_are_refused(value: str) -> None:
    with pytest.raises(InvalidForm):
        parse_peers(value)


@pytest.mark.parametrize(("raw", "size"), [(None, 3), ("1", 1), ("5", 5), ("9", 9), ("07", 7)])
def test_sizes(raw: str | None, size: int) -> None:
    assert parse_size(raw) == size


@pytest.mark.parametrize("raw", ["0", "10", "", "-3", "+3", "3 ", "1_0", "\u0663", "9" * 400])
def test_bad_sizes(raw: str) -> None:
    with pytest.raises(BadSize):
        parse_size(raw)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("0", True),
        ("8e9e05c52164694d", True),
        ("8E9E", False),
        ("8e9e05c52164694d0", False),
        ("_config", False),
        ("", False),
        ("g1", False),
    ],
)
def test_member_ids_are_lowercase_hex_uint64(name: str, ok: bool) -> None:
    assert is_member_id(name) is ok
