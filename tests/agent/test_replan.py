"""A replan after machines went or units came decides what a full plan would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.units import plan, replan, scheduler
from agent.units.scheduler import UnitRequest
from vulcano.records import DesiredState, Machine, UnitSpec
from vulcano.units import FleetOptions

_NAMES = [f"u{i}.service" for i in range(12)]
_ZONES = "ab"


@st.composite
def _units(draw: st.DrawFn, with_conflicts: bool = False) -> list[UnitRequest]:
    """Units with every option a replan handles: MachineOf chains, MachineID, metadata,
    Global; Conflicts=/Replaces= only when asked (the replan declines those)."""
    kinds = ["plain", "plain", "of", "of2", "id", "md", "global"]
    if with_conflicts:
        kinds += ["conflicts", "replaces"]
    units = []
    for name in draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=12)):
        kind = draw(st.sampled_from(kinds))
        opts = FleetOptions()
        if kind == "of":
            opts = FleetOptions(machine_of=(draw(st.sampled_from(_NAMES)),))
        elif kind == "of2":
            peers = draw(st.lists(st.sampled_from(_NAMES), min_size=2, max_size=2, unique=True))
            opts = FleetOptions(machine_of=tuple(peers))
        elif kind == "id":
            opts = FleetOptions(machine_id=f"m{draw(st.integers(0, 5))}{'0' * 8}")
        elif kind == "md":
            opts = FleetOptions(machine_metadata=(("zone", draw(st.sampled_from(_ZONES))),))
        elif kind == "global":
            zone = draw(st.sampled_from(["", *_ZONES]))
            opts = FleetOptions(global_=True, machine_metadata=(("zone", zone),) if zone else ())
        elif kind == "conflicts":
            opts = FleetOptions(conflicts=(draw(st.sampled_from(["u1*", "*", "u?.service"])),))
        elif kind == "replaces":
            opts = FleetOptions(replaces=(draw(st.sampled_from(_NAMES)),))
        units.append(UnitRequest(name, opts))
    return units


@st.composite
def _machines(draw: st.DrawFn) -> list[Machine]:
    return [
        Machine(f"m{i}{'0' * 8}", metadata={"zone": draw(st.sampled_from(_ZONES))}, lease_id=i + 1)
        for i in range(draw(st.integers(0, 6)))
    ]


def _survivors(data: st.DataObject, machines: list[Machine]) -> list[Machine]:
    keep = data.draw(st.lists(st.booleans(), min_size=len(machines), max_size=len(machines)))
    return [m for m, k in zip(machines, keep, strict=True) if k]


def _some(data: st.DataObject, units: list[UnitRequest]) -> list[UnitRequest]:
    keep = data.draw(st.lists(st.booleans(), min_size=len(units), max_size=len(units)))
    return [u for u, k in zip(units, keep, strict=True) if k]


def _same(got: scheduler.Plan | None, want: scheduler.Plan) -> None:
    assert got is not None
    assert (got.targets, got.global_targets, got.reasons) == (
        want.targets,
        want.global_targets,
        want.reasons,
    )


@settings(max_examples=300, deadline=None)
@given(
    units=_units(),
    machines=_machines(),
    current=st.dictionaries(st.sampled_from(_NAMES), st.integers(0, 5), max_size=12),
    data=st.data(),
)
def test_a_replan_places_as_the_full_planner_does_after_machines_went_and_units_came(
    units: list[UnitRequest],
    machines: list[Machine],
    current: dict[str, int],
    data: st.DataObject,
) -> None:
    start = {n: f"m{m}{'0' * 8}" for n, m in current.items()}
    first = _some(data, units)  # the others come later
    previous = scheduler.plan(first, machines, start)
    left = _survivors(data, machines)
    got = scheduler.replan(units, left, previous)
    _same(got, scheduler.plan(units, left, previous.targets))
    assert got is not None
    # and again from the replan, as the engine chains them
    fewer = _survivors(data, left)
    _same(scheduler.replan(units, fewer, got), scheduler.plan(units, fewer, got.targets))


def test_a_replan_declines_when_a_unit_of_the_previous_plan_is_gone() -> None:
    machines = [Machine("m0aaaaaaaa")]
    previous = scheduler.plan([UnitRequest("a.service"), UnitRequest("b.service")], machines)
    assert scheduler.replan([UnitRequest("a.service")], machines, previous) is None


@settings(max_examples=100, deadline=None)
@given(units=_units(with_conflicts=True), machines=_machines(), data=st.data())
def test_with_conflicts_or_replaces_the_replan_declines_or_agrees(
    units: list[UnitRequest], machines: list[Machine], data: st.DataObject
) -> None:
    previous = scheduler.plan(units, machines)
    left = _survivors(data, machines)
    got = scheduler.replan(units, left, previous)
    if any(u.options.conflicts or u.options.replaces for u in units):
        assert got is None
    else:
        assert got is not None
        assert got.targets == scheduler.plan(units, left, previous.targets).targets


def _specs(units: list[UnitRequest], data: st.DataObject) -> dict[str, UnitSpec]:
    desired = st.sampled_from(list(DesiredState))
    return {u.name: UnitSpec(u.name, "h" * 40, data.draw(desired), u.options) for u in units}


def _changed(specs: dict[str, UnitSpec], data: st.DataObject) -> dict[str, UnitSpec]:
    """Some units started again, stopped or given new content (the same options)."""
    out = dict(specs)
    for name, s in specs.items():
        how = data.draw(st.sampled_from(["same", "same", "start", "stop", "content"]))
        if how == "start":
            out[name] = UnitSpec(name, s.hash, DesiredState.LAUNCHED, s.options, s.starts + 1)
        elif how == "stop" and s.desired != DesiredState.INACTIVE:
            out[name] = UnitSpec(name, s.hash, DesiredState.LOADED, s.options, s.starts)
        elif how == "content":
            out[name] = UnitSpec(name, "c" * 40, s.desired, s.options, s.starts)
    return out


@settings(max_examples=300, deadline=None)
@given(units=_units(), machines=_machines(), data=st.data())
def test_the_engines_replan_writes_what_a_full_plan_writes(
    units: list[UnitRequest], machines: list[Machine], data: st.DataObject
) -> None:
    specs = _specs(units, data)
    first = {n: s for n, s in specs.items() if data.draw(st.booleans())}  # others come later
    by_id = {m.id: m for m in machines}
    _, memo = replan.plan_remembered(first, by_id, {}, {})
    placed = dict(memo.desired)  # the engine wrote the first plan
    written = dict(memo.placement.reasons)
    left = {m.id: m for m in _survivors(data, machines)}
    specs = _changed(specs, data)
    full = plan.plan(specs, left, placed, written)
    got = replan.replan(memo, specs, left, placed, written)
    if any(n not in plan.wanted_units(specs) for n in memo.wanted):
        assert got is None  # a unit planned before is unloaded now
        return
    assert got is not None
    actions, after = got
    assert actions == full
    desired, why = plan.desired_placements(specs, left, placed)
    assert after.desired == desired
    assert after.placement.reasons == why


def test_the_engines_replan_declines_what_it_cannot_tell() -> None:
    a = Machine("aaaaaaaa11", lease_id=1)
    b = Machine("bbbbbbbb22", lease_id=2)
    spec = UnitSpec("web.service", "h" * 40, DesiredState.LAUNCHED)
    specs = {spec.name: spec}
    _, memo = replan.plan_remembered(specs, {a.id: a}, {}, {})
    placed = dict(memo.desired)
    # a machine that was not planned on
    assert replan.replan(memo, specs, {a.id: a, b.id: b}, placed, {}) is None
    # a machine whose record changed
    moved = Machine(a.id, metadata={"zone": "b"}, lease_id=1)
    assert replan.replan(memo, specs, {a.id: moved}, placed, {}) is None
    # a unit unloaded, or with other [X-Fleet] options
    unloaded = UnitSpec("web.service", "h" * 40, DesiredState.INACTIVE)
    assert replan.replan(memo, {spec.name: unloaded}, {a.id: a}, placed, {}) is None
    pinned = UnitSpec("web.service", "h" * 40, spec.desired, FleetOptions(machine_id=a.id))
    assert replan.replan(memo, {spec.name: pinned}, {a.id: a}, placed, {}) is None
    # etcd holds other placements than the memo's plan wrote
    assert replan.replan(memo, specs, {a.id: a}, {}, {}) is None
    # the same machine on a new lease is the same machine; a stop is a new Assignment
    renewed = Machine(a.id, lease_id=9)
    assert replan.replan(memo, specs, {a.id: renewed}, placed, {}) is not None
    stopped = UnitSpec("web.service", "h" * 40, DesiredState.LOADED)
    got = replan.replan(memo, {spec.name: stopped}, {a.id: a}, placed, {})
    assert got is not None
    assert got[0] == plan.plan({spec.name: stopped}, {a.id: a}, placed, {})
    assert got[0].assignments
