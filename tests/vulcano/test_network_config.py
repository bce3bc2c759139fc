"""Network configs: what is accepted, what is refused and why; subnet arithmetic."""

from __future__ import annotations

import ipaddress
import random

import pytest

from vulcano.network import (
    NetworkConfig,
    NetworkConfigError,
    SubnetExhausted,
    check_overlap,
    parse,
    pick_subnet,
    sandbox_addresses,
)


def test_defaults_follow_flannel() -> None:
    config = parse({"network": "10.244.0.0/16"})
    assert config.subnet_len == 24
    assert config.vni == 1 and config.port == 8472
    # the first subnet is not handed out, as in flannel
    assert str(config.subnet_min) == "10.244.1.0"
    assert str(config.subnet_max) == "10.244.255.0"
    assert config.subnet_count == 255


def test_config_round_trips_through_json() -> None:
    config = parse({"network": "10.50.0.0/20", "subnet_len": 26, "vni": 7, "port": 4789})
    assert NetworkConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "network: missing"),
        ({"network": "nonsense"}, "not an IPv4 CIDR"),
        ({"network": "fd00::/64"}, "not an IPv4 CIDR"),
        ({"network": "10.244.1.0/16"}, "host bits set"),
        ({"network": "127.0.0.0/16"}, "overlaps reserved"),
        ({"network": "224.1.0.0/16"}, "overlaps reserved"),
        ({"network": "10.244.0.0/16", "subnet_len": 16}, "must be longer"),
        ({"network": "10.244.0.0/16", "subnet_len": 8}, "must be longer"),
        ({"network": "10.244.0.0/16", "subnet_len": 30}, "too small"),
        ({"network": "10.244.0.0/16", "subnet_len": "abc"}, "subnet_len: 'abc' is not a whole"),
        ({"network": "10.244.0.0/16", "subnet_len": True}, "subnet_len"),
        ({"network": "10.244.0.0/16", "vni": 0}, "vni"),
        ({"network": "10.244.0.0/16", "vni": 1 << 24}, "vni"),
        ({"network": "10.244.0.0/16", "port": 70000}, "port"),
        ({"network": "10.244.0.0/16", "subnet_min": "10.9.0.0"}, "outside the network"),
        ({"network": "10.244.0.0/16", "subnet_min": "10.244.1.7"}, "not the first address"),
        ({"network": "10.244.0.0/16", "subnet_min": "x"}, "subnet_min: 'x'"),
        (
            {"network": "10.244.0.0/16", "subnet_min": "10.244.9.0", "subnet_max": "10.244.3.0"},
            "above subnet_max",
        ),
        ({"network": "10.244.0.0/16", "colour": "red"}, "unknown network config field"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        parse(data)


def test_network_containing_an_underlay_address_is_refused() -> None:
    config = parse({"network": "10.0.0.0/8"})
    with pytest.raises(NetworkConfigError, match=r"overlaps the underlay address 10\.1\.2\.3"):
        check_overlap(config, ["192.0.2.1", "10.1.2.3"])
    check_overlap(config, ["192.0.2.1", "etcd.example", "fd00::1"])


def test_from_json_refuses_garbage() -> None:
    with pytest.raises(NetworkConfigError, match="not JSON"):
        NetworkConfig.from_json("{")
    with pytest.raises(NetworkConfigError, match="not a JSON object"):
        NetworkConfig.from_json("[1]")


def test_pick_subnet_returns_only_free_subnets_then_says_exhausted() -> None:
    config = parse({"network": "10.9.0.0/26", "subnet_len": 28})
    assert config.subnet_count == 3
    taken: set[ipaddress.IPv4Network] = set()
    rng = random.Random(1)
    for _ in range(3):
        subnet = pick_subnet(config, taken, rng)
        assert subnet not in taken and config.contains_subnet(subnet)
        taken.add(subnet)
    with pytest.raises(SubnetExhausted, match=r"all 3 /28 subnets of 10\.9\.0\.0/26 are leased"):
        pick_subnet(config, taken, rng)


def test_sandbox_addresses_skip_vtep_bridge_and_broadcast() -> None:
    addresses = [str(a) for a in sandbox_addresses(ipaddress.IPv4Network("10.9.0.16/28"))]
    assert addresses[0] == "10.9.0.18"
    assert addresses[-1] == "10.9.0.30"
    assert len(addresses) == 13
