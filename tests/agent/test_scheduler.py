"""Placement follows fleet's rules, keeps what fits, and explains what it cannot place."""

from __future__ import annotations

from agent.units.scheduler import UnitRequest, plan
from vulcano.records import Machine
from vulcano.units import FleetOptions

M = [
    Machine("aaaaaaaa11", metadata={"region": "us", "disk": "ssd"}),
    Machine("bbbbbbbb22", metadata={"region": "eu", "disk": "hdd"}),
    Machine("cccccccc33", metadata={"region": "eu", "disk": "ssd"}),
]


def u(name: str, **opts: object) -> UnitRequest:
    return UnitRequest(name, FleetOptions(**opts))  # type: ignore[arg-type]


def test_least_loaded_with_ties_to_the_lowest_machine_id() -> None:
    p = plan([u("a.service"), u("b.service"), u("c.service"), u("d.service")], M)
    assert p.targets == {
        "a.service": "aaaaaaaa11",
        "b.service": "bbbbbbbb22",
        "c.service": "cccccccc33",
        "d.service": "aaaaaaaa11",
    }


def test_conflicts_spread_instances_one_per_machine() -> None:
    web = [u(f"web@{i}.service", conflicts=("web@*",)) for i in (1, 2, 3)]
    p = plan([*web, u("x.service"), u("y.service")], M)
    webs = [p.targets[f"web@{i}.service"] for i in (1, 2, 3)]
    assert sorted(webs) == sorted(m.id for m in M)


def test_a_fourth_conflicting_instance_is_explained() -> None:
    web = [u(f"web@{i}.service", conflicts=("web@*",)) for i in (1, 2, 3, 4)]
    p = plan(web, M)
    assert "web@4.service" not in p.targets
    assert p.reasons["web@4.service"].startswith("conflicts with web@")


def test_conflicts_are_checked_both_ways() -> None:
    p = plan([u("a.service", conflicts=("b.service",)), u("b.service")], M[:1])
    assert p.targets == {"a.service": M[0].id}
    assert "conflicts with a.service" in p.reasons["b.service"]


def test_machine_metadata_filters_or_within_a_key_and_across_keys() -> None:
    p = plan([u("x.service", machine_metadata=(("region", "eu"), ("disk", "ssd")))], M)
    assert p.targets == {"x.service": "cccccccc33"}
    p = plan([u("y.service", machine_metadata=(("region", "us"), ("region", "eu")))], M)
    assert p.targets == {"y.service": "aaaaaaaa11"}


def test_unmatched_metadata_is_explained() -> None:
    p = plan([u("x.service", machine_metadata=(("region", "ap"),))], M)
    assert p.targets == {}
    assert p.reasons["x.service"] == "no machine matches MachineMetadata region=ap"


def test_machine_id_pins_by_full_or_short_id() -> None:
    assert plan([u("x.service", machine_id="cccccccc33")], M).targets == {"x.service": "cccccccc33"}
    assert plan([u("x.service", machine_id="bbbbbbbb")], M).targets == {"x.service": "bbbbbbbb22"}
    p = plan([u("x.service", machine_id="bbbb")], M)
    assert p.reasons["x.service"] == "no machine matches MachineID=bbbb"


def test_machine_of_colocates_and_follows_its_peer() -> None:
    units = [u("db.service"), u("zz.service"), u("side.service", machine_of=("db.service",))]
    p = plan(units, M)
    assert p.targets["side.service"] == p.targets["db.service"]
    # db's machine is gone: db moves and its sidekick follows, even if it was kept elsewhere
    survivors = [m for m in M if m.id != p.targets["db.service"]]
    p2 = plan(units, survivors, p.targets)
    assert p2.targets["side.service"] == p2.targets["db.service"] != p.targets["db.service"]


def test_machine_of_an_unscheduled_peer_is_explained() -> None:
    p = plan([u("side.service", machine_of=("db.service",))], M)
    assert p.reasons["side.service"] == "MachineOf=db.service: db.service is not loaded or launched"


def test_replaces_takes_the_machine_and_moves_the_other_unit() -> None:
    current = {"old.service": "bbbbbbbb22"}
    p = plan([u("old.service"), u("new.service", replaces=("old.service",))], M, current)
    assert p.targets["new.service"] == "bbbbbbbb22"
    assert p.targets["old.service"] != "bbbbbbbb22"


def test_global_units_go_to_every_matching_machine() -> None:
    p = plan([u("g.service", global_=True, machine_metadata=(("region", "eu"),))], M)
    assert p.global_targets == {"g.service": ["bbbbbbbb22", "cccccccc33"]}
    assert "g.service" not in p.targets


def test_current_placements_that_still_fit_are_kept() -> None:
    current = {"a.service": "cccccccc33", "b.service": "cccccccc33"}
    p = plan([u("a.service"), u("b.service"), u("c.service")], M, current)
    assert p.targets["a.service"] == "cccccccc33" == p.targets["b.service"]
    assert p.targets["c.service"] == "aaaaaaaa11"


def test_units_of_a_lost_machine_are_replaced_on_the_others() -> None:
    current = {"a.service": "aaaaaaaa11", "b.service": "bbbbbbbb22"}
    p = plan([u("a.service"), u("b.service")], M[1:], current)
    assert p.targets == {"a.service": "cccccccc33", "b.service": "bbbbbbbb22"}


def test_no_machines_is_explained() -> None:
    p = plan([u("a.service")], [])
    assert p.reasons == {"a.service": "no machines in the cluster"}


def test_placement_is_a_pure_function_of_its_inputs() -> None:
    units = [u(f"s{i}.service", conflicts=("s1*",) if i % 7 == 0 else ()) for i in range(60)]
    assert plan(units, M).targets == plan(list(reversed(units)), list(reversed(M))).targets


# --- where fleet's rules meet: Global and Conflicts, mutual Replaces, MachineOf peers ---


def test_two_conflicting_global_units_never_share_a_machine() -> None:
    p = plan(
        [
            u("a-log.service", global_=True, conflicts=("b-log.service",)),
            u("b-log.service", global_=True, machine_metadata=(("region", "eu"),)),
        ],
        M,
    )
    # the first by name keeps every machine it matches; the other is explained
    assert p.global_targets["a-log.service"] == [m.id for m in M]
    assert p.global_targets["b-log.service"] == []
    assert p.reasons["b-log.service"] == "conflicts with a-log.service on every matching machine"


def test_conflicting_globals_split_the_machines_they_do_not_share() -> None:
    p = plan(
        [
            u("a.service", global_=True, machine_metadata=(("disk", "ssd"),)),
            u("b.service", global_=True, conflicts=("a.service",)),
        ],
        M,
    )
    assert p.global_targets == {
        "a.service": ["aaaaaaaa11", "cccccccc33"],
        "b.service": ["bbbbbbbb22"],
    }
    assert "b.service" not in p.reasons
    for m in M:
        here = [g for g, ms in p.global_targets.items() if m.id in ms]
        assert len(here) == 1


def test_a_plain_unit_avoids_machines_where_a_global_conflicts_with_it() -> None:
    units = [
        u("g.service", global_=True, machine_metadata=(("region", "eu"),), conflicts=("x*",)),
        u("x.service"),
        u("y.service", conflicts=("g.service",)),
    ]
    p = plan(units, M)
    assert p.targets == {"x.service": "aaaaaaaa11", "y.service": "aaaaaaaa11"}
    # a kept placement that a global now conflicts with moves
    p = plan(units, M, {"x.service": "bbbbbbbb22"})
    assert p.targets["x.service"] == "aaaaaaaa11"


def test_units_that_replace_each_other_are_placed_as_if_neither_did() -> None:
    # fleet ignored a circular replace: neither evicts the other
    a = u("a.service", replaces=("b.service",))
    b = u("b.service", replaces=("a.service",))
    current = {"a.service": "cccccccc33", "b.service": "cccccccc33"}
    p = plan([a, b], M, current)
    assert p.targets == current
    p = plan([a, b], M[:1])
    assert p.targets == {"a.service": M[0].id, "b.service": M[0].id}


def test_a_one_way_replace_beside_a_circular_one_still_moves_its_victim() -> None:
    units = [
        u("a.service", replaces=("b.service", "c.service")),
        u("b.service", replaces=("a.service",)),
        u("c.service"),
    ]
    current = {"a.service": "bbbbbbbb22", "b.service": "bbbbbbbb22", "c.service": "bbbbbbbb22"}
    p = plan(units, M, current)
    assert p.targets["a.service"] == p.targets["b.service"] == "bbbbbbbb22"
    assert p.targets["c.service"] != "bbbbbbbb22"


def test_a_machine_of_peer_that_conflicts_with_the_unit_is_named() -> None:
    p = plan(
        [u("db.service", conflicts=("side*",)), u("side.service", machine_of=("db.service",))], M
    )
    assert "side.service" not in p.targets
    assert p.reasons["side.service"] == (
        "MachineOf=db.service, but db.service conflicts with side.service (Conflicts=side*)"
    )


def test_a_machine_of_peer_that_replaces_the_unit_is_named() -> None:
    p = plan(
        [
            u("db.service", replaces=("side.service",)),
            u("side.service", machine_of=("db.service",)),
        ],
        M,
    )
    assert "side.service" not in p.targets
    assert p.reasons["side.service"] == (
        "MachineOf=db.service, but db.service replaces side.service: they cannot share a machine"
    )
