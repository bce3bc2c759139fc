"""Hostile input to the shared core's parsers: a correct result or the project's error.

Budgets (derandomized, no database: tests/conftest.py): 300 unit files, 300 names,
200 network configs, 200 key lines. Size limits: unit file 256 KiB, glob 255 chars,
64 entries a list, network config 4 KiB, key paste 256 KiB.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vulcano import errors, network, sshkeys, unitnames, units
from vulcano.lab.sshkeys import ed25519_line, line_from_blob, ssh_string

_LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r", "\x0c", "\x0b", "\x85", "\u2028", "\\\n"])


@settings(max_examples=300)
@given(
    text=st.lists(
        st.one_of(_LINE_ENDS, st.sampled_from(["[Unit]", "A=b", " ", "#x"])), max_size=40
    ).map("".join)
)
def test_unit_files_parse_as_systemd_reads_them_or_are_refused(text: str) -> None:
    try:
        unit = units.parse(text)
    except errors.UnitFileError as exc:
        assert str(exc).strip()
        return
    assert "\r" not in text.replace("\r\n", "\n")[:-1]  # a lone CR never gets through
    for o in unit.options:
        assert o.value == o.value.strip(" \t\n\r")  # systemd strips just these
        assert "\n" not in o.key + o.value


@settings(max_examples=300)
@given(name=st.text(max_size=40) | st.sampled_from(["web.service\n", "a@b.service\n"]))
def test_unit_names_are_whole_matches(name: str) -> None:
    try:
        un = unitnames.parse_name(name)
    except errors.UnitNameError:
        return
    assert "\n" not in un.name and un.name.endswith("." + un.suffix)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(errors.UnitNameError):
        unitnames.parse_name("web.service\n")


def test_a_lone_carriage_return_is_refused_naming_its_line() -> None:
    with pytest.raises(errors.UnitFileError, match="line 2: a carriage return"):
        units.parse("[Unit]\nA=b\rB=c\n")


def test_only_systemds_whitespace_is_stripped() -> None:
    assert units.parse("[Unit]\nA=b\x0c\n").value("Unit", "A") == "b\x0c"


def test_a_file_of_continued_lines_at_the_size_limit_parses() -> None:
    # how long it takes at the limit is bench/hostile_inputs.py's figure
    text = "[Unit]\nA=" + "x\\\n" * (units.MAX_UNIT_FILE_BYTES // 3 - 10) + "y\n"
    value = units.parse(text).value("Unit", "A", "")
    assert value.endswith("y") and value.count("x") == units.MAX_UNIT_FILE_BYTES // 3 - 10


def test_globs_and_lists_over_their_limits_are_refused() -> None:
    too_long = "[X-Fleet]\nConflicts=" + "*a" * 200 + "\n"
    with pytest.raises(errors.UnitFileError, match="glob longer than 255"):
        units.load(too_long, "x.service")
    many = "[X-Fleet]\nConflicts=" + " ".join(f"g{i}*" for i in range(65)) + "\n"
    with pytest.raises(errors.UnitFileError, match="more than 64"):
        units.load(many, "x.service")


def test_a_quadratic_glob_at_the_limit_is_matched_correctly() -> None:
    # how long it takes at the limit is bench/hostile_inputs.py's figure
    assert not units.glob_matches("*a" * 127 + "b", "a" * 255)
    assert units.glob_matches("*a" * 127, "a" * 255)


_net_values = st.one_of(
    st.integers(-5, 40),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
    st.sampled_from(["24", "٢٤", "24\n", "1_0", "192.0.0.0/3", "10.0.0.0/8"]),
)


@settings(max_examples=200)
@given(
    fields=st.dictionaries(
        st.sampled_from(["network", "subnet_len", "subnet_min", "vni", "port"]), _net_values
    )
)
def test_network_configs_are_valid_or_refused_naming_a_field(fields: dict[str, object]) -> None:
    data = {"network": "10.244.0.0/16", **fields}
    try:
        config = network.parse(data)
    except network.NetworkConfigError as exc:
        assert str(exc).split(":")[0] in {*data, "unknown network config field(s)"} or str(exc)
        return
    assert network.NetworkConfig.from_json(config.to_json()) == config
    subnet = network.pick_subnet(config, set(), random.Random(1))
    assert config.contains_subnet(subnet)


def test_picking_among_33_million_subnets_gives_free_ones_only() -> None:
    # how long a pick takes at this size is bench/hostile_inputs.py's figure
    config = network.parse({"network": "192.0.0.0/3", "subnet_len": 28})
    taken = {ipaddress.IPv4Network("192.0.0.16/28")}
    for seed in range(50):
        got = network.pick_subnet(config, taken, random.Random(seed))
        assert config.contains_subnet(got) and got not in taken
    small = network.parse({"network": "10.0.0.0/24", "subnet_len": 26})
    every = set(small.subnets())
    assert network.pick_subnet(small, every - {ipaddress.IPv4Network("10.0.0.128/26")}) == (
        ipaddress.IPv4Network("10.0.0.128/26")
    )
    with pytest.raises(network.SubnetExhausted):
        network.pick_subnet(small, every)


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"network": "' + "x" * 5000 + '"}'])
def test_deep_or_huge_config_json_is_refused(raw: str) -> None:
    with pytest.raises(network.NetworkConfigError):
        network.NetworkConfig.from_json(raw)


@pytest.mark.parametrize("value", ["٢٤", "24\n", "1_0"])
def test_only_ascii_whole_numbers(value: str) -> None:
    with pytest.raises(network.NetworkConfigError, match="subnet_len"):
        network.parse({"network": "10.0.0.0/8", "subnet_len": value})


@settings(max_examples=200)
@given(point=st.binary(min_size=32, max_size=32), comment=st.text(max_size=20))
def test_ed25519_keys_are_points_or_refused(point: bytes, comment: str) -> None:
    line = ed25519_line(comment, key=point)
    try:
        key = sshkeys.parse_key(line)
    except sshkeys.SSHKeyError as exc:
        assert str(exc)
        return
    assert sshkeys._ed25519_decodes(key.blob[-32:])
    assert sshkeys.parse_key(key.line) == key  # the canonical line round-trips


def test_keys_that_are_not_keys_are_refused() -> None:
    off_curve = b"\x04" + b"p" * 64
    blob = ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(b"nistp256") + ssh_string(off_curve)
    with pytest.raises(sshkeys.SSHKeyError, match="not on the nistp256 curve"):
        sshkeys.parse_key(line_from_blob("ecdsa-sha2-nistp256", blob))
    with pytest.raises(sshkeys.SSHKeyError, match="not a point"):
        sshkeys.parse_key(ed25519_line(key=b"\xff" * 32))
    padded = ssh_string(b"ssh-rsa") + ssh_string(b"\x00\x01\x00\x01") + ssh_string(b"\x01" * 256)
    with pytest.raises(sshkeys.SSHKeyError, match="leading zero"):
        sshkeys.parse_key(line_from_blob("ssh-rsa", padded))
    with pytest.raises(sshkeys.SSHKeyError, match="KiB"):
        sshkeys.parse_keys("#\n" * sshkeys.MAX_TEXT_CHARS)
