"""The balancer's pure half: validated backends, nginx/HAProxy text, HAProxy slots."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.balancer.backends import (
    Backend,
    Listen,
    ListenError,
    backends_from,
    check_port_selector,
    check_selector,
    parse_listen,
)
from agent.balancer.render import (
    HaproxyPaths,
    NginxPaths,
    fresh_slots,
    nginx_config_id,
    plan_slots,
    render_haproxy,
    render_nginx,
    runtime_commands,
)
from vulcano.endpoints import Endpoint, PortSpec
from vulcano.keyspace import Keyspace

KS = Keyspace()
PREFIX = KS.endpoints
NGINX = NginxPaths(Path("/s/nginx.pid"), Path("/s/tmp"), Path("/s/status.sock"))
HAPROXY = HaproxyPaths(Path("/s/haproxy.sock"))
LISTEN = Listen("", 80)


def record(unit: str, machine: str, address: str, *ports: PortSpec) -> tuple[str, bytes]:
    ports = ports or (PortSpec(8080),)
    return KS.endpoint(unit, machine), Endpoint(unit, machine, address, ports).to_json().encode()


B1, B2, B3 = Backend("10.0.0.1", 8080), Backend("10.0.0.2", 8080), Backend("10.0.0.3", 8080)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":80", Listen("", 80)),
        ("80", Listen("", 80)),
        ("127.0.0.1:8080", Listen("127.0.0.1", 8080)),
        ("0.0.0.0:443", Listen("0.0.0.0", 443)),
        ("[::1]:8080", Listen("::1", 8080)),
    ],
)
def test_listen_forms_parse(value: str, expected: Listen) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        ":0",
        ":65536",
        "localhost:80",
        "1.2.3:80",
        "::1:80",
        ":80;",
        ":80\n",
        "127.0.0.1:80 default_server",
        "[::1]:80; include /etc/passwd",
    ],
)
def test_bad_listen_is_refused_naming_the_flag(value: str) -> None:
    with pytest.raises(ListenError, match="--listen"):
        parse_listen(value)


@pytest.mark.parametrize("value", ["web@", "web", "web.service", "web@1.service", "a-b_c.x"])
def test_selectors_accepted(value: str) -> None:
    assert check_selector(value) == value


@pytest.mark.parametrize("value", ["", "@", "web@@", "we b@", "web;", "web@\n", ".web"])
def test_bad_selectors_refused(value: str) -> None:
    with pytest.raises(ListenError, match="--for"):
        check_selector(value)


def test_port_selector_name_or_number() -> None:
    assert check_port_selector(None) is None
    assert check_port_selector("http") == "http"
    assert check_port_selector("0080") == "80"
    for bad in ("0", "70000", "a b", "http;"):
        with pytest.raises(ListenError, match="--port"):
            check_port_selector(bad)


def test_instances_of_the_template_become_backends_others_are_ignored() -> None:
    records = [
        record("web@1.service", "m1", "10.0.0.1"),
        record("web@2.service", "m2", "10.0.0.2"),
        record("api@1.service", "m1", "10.0.0.9"),
        record("web.service", "m3", "10.0.0.8"),
    ]
    backends, skipped = backends_from(records, PREFIX, "web@")
    assert backends == {B1, B2}
    assert skipped == ()


def test_port_chosen_by_name_or_number_first_tcp_by_default() -> None:
    ports = (PortSpec(53, "udp", "dns"), PortSpec(8080, "tcp", "http"), PortSpec(9090, "tcp", "m"))
    records = [record("web@1.service", "m1", "10.0.0.1", *ports)]
    assert backends_from(records, PREFIX, "web@")[0] == {Backend("10.0.0.1", 8080)}
    assert backends_from(records, PREFIX, "web@", "m")[0] == {Backend("10.0.0.1", 9090)}
    assert backends_from(records, PREFIX, "web@", "9090")[0] == {Backend("10.0.0.1", 9090)}
    none, skipped = backends_from(records, PREFIX, "web@", "dns")  # udp: not balanced
    assert none == frozenset()
    assert "declares no tcp port 'dns'" in skipped[0].reason


HOSTILE = [
    "10.0.0.5:80; } server { listen 81",
    "10.0.0.5\n    server evil.example:80",
    "evil.example",
    "10.0.0.5 backup",
    "0.0.0.0",
    "224.0.0.1",
    "",
    "${HOME}",
]


@pytest.mark.parametrize("address", HOSTILE)
def test_hostile_addresses_are_skipped_with_a_reason(address: str) -> None:
    records = [record("web@1.service", "m1", "10.0.0.1"), record("web@2.service", "m2", address)]
    backends, skipped = backends_from(records, PREFIX, "web@")
    assert backends == {B1}
    assert [s.key for s in skipped] == [KS.endpoint("web@2.service", "m2")]
    for text in (
        render_nginx(backends, LISTEN, NGINX),
        render_haproxy(fresh_slots(backends), LISTEN, HAPROXY),
    ):
        assert address not in text or address == ""


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "unreadable"),
        (b"[]", "unreadable"),
        (json.dumps({"unit": "web@1.service"}).encode(), "unreadable"),
        (
            json.dumps(
                {
                    "unit": "web@1.service",
                    "machine_id": "m1",
                    "address": "10.0.0.1",
                    "ports": [{"port": "80; evil"}],
                }
            ).encode(),
            "unreadable",
        ),
        (
            json.dumps(
                {
                    "unit": "web@1.service",
                    "machine_id": "m1",
                    "address": "10.0.0.1",
                    "ports": [{"port": 70000}],
                }
            ).encode(),
            "outside 1-65535",
        ),
        (Endpoint("web@9.service", "m1", "10.0.0.1", (PortSpec(80),)).to_json().encode(), "key"),
        (Endpoint("web@1.service", "m2", "10.0.0.1", (PortSpec(80),)).to_json().encode(), "key"),
    ],
)
def test_broken_records_are_skipped(raw: bytes, reason: str) -> None:
    backends, skipped = backends_from([(KS.endpoint("web@1.service", "m1"), raw)], PREFIX, "web@")
    assert backends == frozenset()
    assert len(skipped) == 1 and reason in skipped[0].reason


def test_ipv6_addresses_are_canonical_and_bracketed() -> None:
    records = [record("web@1.service", "m1", "fd00:0::0:1")]
    backends, _ = backends_from(records, PREFIX, "web@")
    assert backends == {Backend("fd00::1", 8080)}
    assert "server [fd00::1]:8080 " in render_nginx(backends, LISTEN, NGINX)
    assert "server srv1 [fd00::1]:8080" in render_haproxy(fresh_slots(backends), LISTEN, HAPROXY)


def test_nginx_renders_every_backend_in_an_upstream() -> None:
    text = render_nginx({B2, B1, B3}, Listen("127.0.0.1", 8080), NGINX)
    servers = [ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("server 10.")]
    assert servers == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
    assert "listen 127.0.0.1:8080;" in text
    assert "proxy_pass http://vulcano_backends;" in text
    assert "return 503" not in text
    assert f"pid {NGINX.pid};" in text and f"listen unix:{NGINX.status_socket};" in text


def test_no_backend_renders_a_503_server() -> None:
    for text in (render_nginx(set(), LISTEN, NGINX), render_nginx([], Listen("::1", 81), NGINX)):
        assert "upstream vulcano_backends" not in text
        assert 'return 503 "no backend is available\\n";' in text
    haproxy = render_haproxy(fresh_slots(()), LISTEN, HAPROXY)
    servers = [ln for ln in haproxy.splitlines() if ln.strip().startswith("server ")]
    assert servers and all(ln.endswith(" disabled") for ln in servers)  # HAProxy says 503


def test_config_id_names_the_text() -> None:
    a = render_nginx({B1}, LISTEN, NGINX)
    b = render_nginx({B2}, LISTEN, NGINX)
    assert nginx_config_id(a) and nginx_config_id(b)
    assert nginx_config_id(a) != nginx_config_id(b)


backend_sets = st.frozensets(
    st.builds(
        Backend,
        st.sampled_from([f"10.0.{i}.{j}" for i in range(3) for j in range(1, 5)]),
        st.integers(1, 65535),
    ),
    max_size=12,
)


@settings(max_examples=200)
@given(backend_sets, st.randoms())
def test_equal_sets_render_identical_text(backends: frozenset[Backend], rnd: random.Random) -> None:
    shuffled = list(backends)
    rnd.shuffle(shuffled)
    assert render_nginx(shuffled, LISTEN, NGINX) == render_nginx(backends, LISTEN, NGINX)
    assert render_haproxy(fresh_slots(shuffled), LISTEN, HAPROXY) == render_haproxy(
        fresh_slots(backends), LISTEN, HAPROXY
    )


def test_fresh_slots_leave_headroom() -> None:
    assert len(fresh_slots({B1, B2, B3})) == 8
    assert len(fresh_slots({Backend("10.0.0.1", p) for p in range(1, 11)})) == 20
    assert fresh_slots({B3, B1})[:3] == (B1, B3, None)


def test_a_change_that_fits_keeps_everyone_else_in_their_slot() -> None:
    slots = fresh_slots({B1, B2, B3})
    B4 = Backend("10.0.0.4", 8080)
    plan = plan_slots(slots, {B1, B3, B4})
    assert plan.fits
    assert plan.slots[:4] == (B1, B4, B3, None)  # B4 took B2's freed slot
    assert plan.changes == ((1, B4),)  # freeing then filling slot 1 is one change
    assert runtime_commands(plan.changes) == [
        "set server be/srv2 addr 10.0.0.4 port 8080",
        "set server be/srv2 state ready",
    ]
    removal = plan_slots(slots, {B1, B3})
    assert removal.changes == ((1, None),)
    assert runtime_commands(removal.changes) == ["set server be/srv2 state maint"]
    assert plan_slots(slots, {B1, B2, B3}).changes == ()


def test_running_out_of_slots_asks_for_a_fresh_render() -> None:
    slots = fresh_slots({B1})
    many = {Backend("10.0.1.1", p) for p in range(1, 12)}
    plan = plan_slots(slots, many)
    assert not plan.fits and plan.changes == ()
    assert plan.slots == fresh_slots(many) and len(plan.slots) == 22


def test_haproxy_text_matches_the_slots_after_runtime_changes() -> None:
    B4 = Backend("10.0.0.4", 9000)
    plan = plan_slots(fresh_slots({B1, B2}), {B2, B4})
    text = render_haproxy(plan.slots, LISTEN, HAPROXY)
    assert "    server srv1 10.0.0.4:9000\n" in text
    assert "    server srv2 10.0.0.2:8080\n" in text
    assert "    server srv3 127.0.0.1:1 disabled\n" in text
    assert f"stats socket {HAPROXY.stats_socket} mode 600 level admin" in text
    assert "bind :80\n" in text
