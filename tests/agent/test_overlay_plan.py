"""The reconciler's pure half: desired entries from leases, and the kernel diff."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.overlay.leases import SubnetLease
from agent.overlay.plan import DataPathState, FdbEntry, Neighbour, Plan, Route, desired_state, plan
from vulcano.network import parse

CONFIG = parse({"network": "10.244.0.0/16", "subnet_len": 24})
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def lease(subnet: str, machine: str, ip: str, mac: str, backend: str = "vxlan") -> SubnetLease:
    return SubnetLease(ipaddress.IPv4Network(subnet), machine, ip, mac, backend)


def state(*entries: Neighbour | FdbEntry | Route) -> DataPathState:
    return DataPathState(
        frozenset(e for e in entries if isinstance(e, Neighbour)),
        frozenset(e for e in entries if isinstance(e, FdbEntry)),
        frozenset(e for e in entries if isinstance(e, Route)),
    )


PEER_A = (
    Neighbour("10.244.1.0", MAC_A),
    FdbEntry(MAC_A, "192.0.2.11"),
    Route("10.244.1.0/24", "10.244.1.0"),
)


def test_each_remote_lease_becomes_neighbour_fdb_and_route() -> None:
    leases = [
        lease("10.244.1.0/24", "a", "192.0.2.11", MAC_A),
        lease("10.244.2.0/24", "me", "192.0.2.12", MAC_B),
    ]
    assert desired_state(leases, "me", CONFIG) == state(*PEER_A)


@pytest.mark.parametrize(
    "skipped",
    [
        lease("10.244.1.0/24", "me", "192.0.2.11", MAC_A),  # our own
        lease("10.244.1.0/24", "a", "192.0.2.11", MAC_A, backend="host-gw"),  # other backend
        lease("10.99.1.0/24", "a", "192.0.2.11", MAC_A),  # outside the network
        lease("10.244.1.0/24", "a", "192.0.2.11", ""),  # no VTEP MAC yet
    ],
)
def test_leases_that_are_not_remote_vxlan_peers_are_skipped(skipped: SubnetLease) -> None:
    assert desired_state([skipped], "me", CONFIG) == DataPathState()


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        # nothing to do
        (state(), state(), Plan()),
        (state(*PEER_A), state(*PEER_A), Plan()),
        # a new peer: everything added
        (
            state(*PEER_A),
            state(),
            Plan(add_fdb=(PEER_A[1],), add_neighbours=(PEER_A[0],), add_routes=(PEER_A[2],)),
        ),
        # a peer whose lease disappeared: everything removed
        (
            state(),
            state(*PEER_A),
            Plan(
                remove_routes=(PEER_A[2],),
                remove_neighbours=(PEER_A[0],),
                remove_fdb=(PEER_A[1],),
            ),
        ),
        # a peer came back with a new public IP: only its fdb entry changes
        (
            state(PEER_A[0], FdbEntry(MAC_A, "192.0.2.99"), PEER_A[2]),
            state(*PEER_A),
            Plan(remove_fdb=(PEER_A[1],), add_fdb=(FdbEntry(MAC_A, "192.0.2.99"),)),
        ),
        # a peer came back with a new VTEP MAC: neighbour and fdb replaced, route kept
        (
            state(Neighbour("10.244.1.0", MAC_B), FdbEntry(MAC_B, "192.0.2.11"), PEER_A[2]),
            state(*PEER_A),
            Plan(
                remove_neighbours=(PEER_A[0],),
                remove_fdb=(PEER_A[1],),
                add_fdb=(FdbEntry(MAC_B, "192.0.2.11"),),
                add_neighbours=(Neighbour("10.244.1.0", MAC_B),),
            ),
        ),
        # a half-programmed peer (route missing, e.g. after a crash): only the gap is filled
        (state(*PEER_A), state(PEER_A[0], PEER_A[1]), Plan(add_routes=(PEER_A[2],))),
    ],
)
def test_plan_is_the_exact_difference(
    desired: DataPathState, actual: DataPathState, expected: Plan
) -> None:
    assert plan(desired, actual) == expected


def test_empty_plan_reports_empty() -> None:
    assert Plan().empty
    assert not plan(state(*PEER_A), state()).empty


_entries = st.builds(
    lambda n, m, d: (
        Neighbour(f"10.244.{n}.0", f"02:00:00:00:00:{m:02x}"),
        FdbEntry(f"02:00:00:00:00:{m:02x}", f"192.0.2.{d}"),
        Route(f"10.244.{n}.0/24", f"10.244.{n}.0"),
    ),
    st.integers(1, 20),
    st.integers(1, 20),
    st.integers(1, 20),
)


@given(st.lists(_entries, max_size=8), st.lists(_entries, max_size=8))
def test_applying_a_plan_to_the_actual_state_yields_the_desired_state(
    desired_peers: list[tuple[Neighbour, FdbEntry, Route]],
    actual_peers: list[tuple[Neighbour, FdbEntry, Route]],
) -> None:
    desired = state(*[e for peer in desired_peers for e in peer])
    actual = state(*[e for peer in actual_peers for e in peer])
    p = plan(desired, actual)
    after = DataPathState(
        (actual.neighbours - set(p.remove_neighbours)) | set(p.add_neighbours),
        (actual.fdb - set(p.remove_fdb)) | set(p.add_fdb),
        (actual.routes - set(p.remove_routes)) | set(p.add_routes),
    )
    assert after == desired
    assert plan(desired, after).empty
