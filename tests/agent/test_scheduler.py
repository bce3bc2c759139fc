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
