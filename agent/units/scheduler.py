"""Placement as a pure function: (units, machines, current targets) → targets + reasons.

fleet's rules: MachineID pins (full or short id), MachineOf co-locates and follows,
MachineMetadata filters (values of one key OR'd, keys AND'd), Conflicts globs checked
both ways, Replaces moves the replaced unit elsewhere, Global runs on every matching
machine. Among the machines left, the least loaded wins, ties to the lowest machine id.
A placement that still fits is kept, so units do not move when nothing forces them to.

Where fleet left it open: two Global units that conflict never share a machine (the
first by name keeps it; fleet's agents ran both), and a plain unit avoids machines where
a Global unit conflicts with it. Two units that replace each other are placed as if
neither replaced the other, as fleet's agent did (it ignored circular replaces). A unit
whose MachineOf= peer conflicts with it or replaces it stays unplaced, with a reason
naming both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from agent.units.board import Board
from vulcano.records import SHORT_ID_LENGTH, Machine
from vulcano.units import FleetOptions, metadata_matches


@dataclass(frozen=True)
class UnitRequest:
    """A unit whose desired state needs a machine (loaded or launched)."""

    name: str
    options: FleetOptions = field(default_factory=FleetOptions)


@dataclass
class Plan:
    targets: dict[str, str] = field(default_factory=dict)  # non-global unit → machine id
    global_targets: dict[str, list[str]] = field(default_factory=dict)  # unit → machine ids
    reasons: dict[str, str] = field(default_factory=dict)  # unit → why it has no machine
    # the non-global units in planning order (MachineOf peers first): a replan reuses it
    order: list[str] = field(default_factory=list, repr=False, compare=False)


def machine_id_matches(wanted: str, machine_id: str) -> bool:
    """MachineID= names a machine by its full id or a prefix of at least 8 characters."""
    if wanted == machine_id:
        return True
    return len(wanted) >= SHORT_ID_LENGTH and machine_id.startswith(wanted)


def describe_metadata(requirements: Mapping[str, list[str]]) -> str:
    return " ".join(f"{k}={'|'.join(v)}" for k, v in requirements.items())


class _Planner:
    def __init__(
        self,
        units: Iterable[UnitRequest],
        machines: Iterable[Machine],
        current: Mapping[str, str],
    ) -> None:
        self.requests = {u.name: u for u in units}
        self.board = Board(machines)
        self.current = current
        self.plan = Plan()
        # Only units that declare Conflicts/Replaces need the slow both-ways glob checks.
        self.with_conflicts = {n for n, u in self.requests.items() if u.options.conflicts}
        self.with_replaces = {n for n, u in self.requests.items() if u.options.replaces}
        self.globals_on: dict[str, set[str]] = {m: set() for m in self.board.machines}
        # peer → units that found it without a machine; retried once it has one
        self.waiting: dict[str, list[str]] = {}

    # --- checks -----------------------------------------------------------------

    def _conflict_on(
        self, name: str, machine: str, ignoring: AbstractSet[str] = frozenset()
    ) -> str | None:
        """The unit on ``machine`` that conflicts with ``name`` (either way), if any."""
        mine = self.requests[name].options
        if not mine.conflicts and not self.with_conflicts:
            return None
        here = self.board.units[machine] | self.globals_on[machine]
        if mine.conflicts:
            for other in sorted(here):
                if other != name and other not in ignoring and mine.conflicting_glob(other):
                    return other
        for other in sorted(here & self.with_conflicts):
            theirs = self.requests[other].options
            if other != name and other not in ignoring and theirs.conflicting_glob(name):
                return other
        return None

    def _replaces(self, a: str, b: str) -> bool:
        """``a`` replaces ``b``; not when they replace each other (fleet ignored that)."""
        if a == b or not self.requests[a].options.replaces_name(b):
            return False
        return not self.requests[b].options.replaces_name(a)

    def _replaced_by_someone_on(self, name: str, machine: str) -> str | None:
        for other in sorted(self.board.units[machine] & self.with_replaces):
            if self._replaces(other, name):
                return other
        return None

    def _replaceable_on(self, name: str, machine: str) -> set[str]:
        if not self.requests[name].options.replaces:
            return set()
        return {o for o in self.board.units[machine] if self._replaces(name, o)}

    def _peer_objection(self, name: str) -> str | None:
        """Why ``name`` can never sit beside its MachineOf= peers, naming both, if so."""
        for peer in self.requests[name].options.machine_of:
            theirs = self.requests.get(peer)
            if theirs is None:
                continue
            hit = theirs.options.conflicting_glob(name)
            if hit is not None:
                return f"MachineOf={peer}, but {peer} conflicts with {name} (Conflicts={hit})"
            if self._replaces(peer, name):
                return f"MachineOf={peer}, but {peer} replaces {name}: they cannot share a machine"
        return None

    def _static_fit(self, req: UnitRequest, machine: Machine) -> bool:
        o = req.options
        if o.machine_id and not machine_id_matches(o.machine_id, machine.id):
            return False
        return metadata_matches(o.metadata_requirements(), machine.metadata)

    def _peer_machines(self, req: UnitRequest) -> tuple[set[str] | None, str | None]:
        """Machines allowed by MachineOf (None: no constraint), or a reason."""
        allowed: set[str] | None = None
        for peer in req.options.machine_of:
            if peer in self.plan.global_targets:
                here = set(self.plan.global_targets[peer])
            elif peer in self.board.where:
                here = {self.board.where[peer]}
            elif peer in self.requests:
                return None, f"MachineOf={peer}: {peer} has no machine yet"
            else:
                return None, f"MachineOf={peer}: {peer} is not loaded or launched"
            allowed = here if allowed is None else allowed & here
        if allowed is not None and not allowed:
            return None, "MachineOf peers are on different machines"
        return allowed, None

    def _fits(self, name: str, machine: str) -> bool:
        req = self.requests[name]
        if not self._static_fit(req, self.board.machines[machine]):
            return False
        allowed, _ = self._peer_machines(req)
        if req.options.machine_of and (allowed is None or machine not in allowed):
            return False
        if self._replaced_by_someone_on(name, machine):
            return False
        replaced = self._replaceable_on(name, machine)
        return self._conflict_on(name, machine, replaced) is None

    # --- planning ---------------------------------------------------------------

    def _order(self, names: Iterable[str]) -> list[str]:
        """Name order, with every unit after the MachineOf peers it follows.

        A depth-first walk with its own stack: a MachineOf= chain as long as the cluster
        has units must not meet the interpreter's recursion limit.
        """
        names = sorted(names)
        pending = set(names)
        out: list[str] = []
        visiting: set[str] = set()
        for root in names:
            if root not in pending:
                continue
            visiting.add(root)
            stack = [(root, iter(self.requests[root].options.machine_of))]
            while stack:
                n, peers = stack[-1]
                peer = next((p for p in peers if p in pending and p not in visiting), None)
                if peer is not None:
                    visiting.add(peer)
                    stack.append((peer, iter(self.requests[peer].options.machine_of)))
                    continue
                stack.pop()
                visiting.discard(n)
                pending.discard(n)
                out.append(n)
        return out

    def run(self, kept: Mapping[str, str] | None = None, order: list[str] | None = None) -> Plan:
        """The plan; ``kept`` (with ``order``): the placements step 1 would keep, known
        beforehand (see `replan`), so only the units without one are placed."""
        self._place_globals()
        if order is None:
            order = self._order(n for n, u in self.requests.items() if not u.options.global_)
        ordered = order
        if kept is not None:
            self.board.put_all(kept)
        else:
            # 1. keep current placements that still fit, in dependency order
            for name in ordered:
                machine = self.current.get(name)
                if machine in self.board.machines and self._fits(name, machine):
                    self.board.put(name, machine)
            # a kept unit that Replaces another evicts it
            for name in sorted(self.with_replaces & set(self.board.where)):
                if name in self.board.where:
                    for victim in self._replaceable_on(name, self.board.where[name]):
                        self._evict(victim)
        # 2. place the rest
        queue = deque(n for n in ordered if n not in self.board.where)
        while queue:
            name = queue.popleft()
            if name in self.board.where:
                continue
            evicted = self._place(name)
            queue.extend(self._order(evicted))
            if name in self.board.where:
                # a follower tried before its peer came back (after an eviction) tries again
                queue.extend(self._order(self.waiting.pop(name, [])))
        self.plan.targets = dict(self.board.where)
        self.plan.order = ordered
        for name in self.plan.targets:
            self.plan.reasons.pop(name, None)
        return self.plan

    def _evict(self, name: str) -> list[str]:
        """Take ``name`` off its machine, with the units that follow it there (no recursion)."""
        out: list[str] = []
        stack = [name]
        while stack:
            unit = stack.pop()
            out.append(unit)
            machine = self.board.remove(unit)
            if machine is None:
                continue
            followers = [
                other
                for other in sorted(self.board.units[machine])
                if unit in self.requests[other].options.machine_of
            ]
            stack.extend(reversed(followers))
        return out

    def _place(self, name: str) -> list[str]:
        req = self.requests[name]
        o = req.options
        machines = self.board.by_id
        if not machines:
            self.plan.reasons[name] = "no machines in the cluster"
            return []
        if self._unconstrained(o):
            # every machine fits: the least loaded one, as the sort below would find
            chosen = self.board.least_loaded()
            assert chosen is not None
            self.board.put(name, chosen)
            return []
        candidates = machines
        if o.machine_id:
            candidates = [m for m in candidates if machine_id_matches(o.machine_id, m.id)]
            if not candidates:
                self.plan.reasons[name] = f"no machine matches MachineID={o.machine_id}"
                return []
        req_md = o.metadata_requirements()
        if req_md:
            candidates = [m for m in candidates if metadata_matches(req_md, m.metadata)]
            if not candidates:
                self.plan.reasons[name] = (
                    f"no machine matches MachineMetadata {describe_metadata(req_md)}"
                )
                return []
        allowed, why = self._peer_machines(req)
        why = why or self._peer_objection(name)
        for peer in o.machine_of if why else ():
            if peer in self.requests and peer not in self.board.where:
                self.waiting.setdefault(peer, []).append(name)
        if why:
            self.plan.reasons[name] = why
            return []
        if allowed is not None:
            candidates = [m for m in candidates if m.id in allowed]
            if not candidates:
                self.plan.reasons[name] = (
                    f"MachineOf={','.join(o.machine_of)}: that machine does not match "
                    "this unit's other options"
                )
                return []
        fitting: list[tuple[int, int, str, set[str]]] = []
        blockers: list[str] = []
        if not o.replaces:
            # least loaded first, so the first machine that fits is the answer
            candidates = sorted(candidates, key=lambda m: (len(self.board.units[m.id]), m.id))
        for m in candidates:
            if self._replaced_by_someone_on(name, m.id):
                blockers.append(f"replaced by {self._replaced_by_someone_on(name, m.id)}")
                continue
            replaced = self._replaceable_on(name, m.id)
            other = self._conflict_on(name, m.id, replaced)
            if other is not None:
                blockers.append(other)
                continue
            # machines holding a unit we replace come first: that is what Replaces asks
            load = len(self.board.units[m.id])
            fitting.append((0 if replaced else 1, load, m.id, replaced))
            if not o.replaces:
                break
        if not fitting:
            shown = ", ".join(sorted(set(blockers))[:3])
            self.plan.reasons[name] = f"conflicts with {shown} on every matching machine"
            return []
        _, _, chosen, replaced = min(fitting, key=lambda t: (t[0], t[1], t[2]))
        evicted: list[str] = []
        for victim in sorted(replaced):
            evicted.extend(self._evict(victim))
        self.board.put(name, chosen)
        return evicted

    def _unconstrained(self, o: FleetOptions) -> bool:
        """Nothing in the plan can keep this unit off any machine."""
        pinned = o.machine_id or o.machine_of or o.machine_metadata
        others = self.with_conflicts or self.with_replaces
        return not (pinned or o.replaces or o.conflicts or others)

    def _place_globals(self) -> None:
        """Every Global unit on every matching machine, by name; conflicting ones apart."""
        machines = self.board.by_id
        for name in sorted(n for n, r in self.requests.items() if r.options.global_):
            req = self.requests[name]
            matching = [m.id for m in machines if self._static_fit(req, m)]
            chosen: list[str] = []
            blockers: set[str] = set()
            for m in matching:
                other = self._conflict_on(name, m)
                if other is None:
                    chosen.append(m)
                    self.globals_on[m].add(name)
                else:
                    blockers.add(other)
            self.plan.global_targets[name] = chosen
            if chosen:
                continue
            if blockers:
                shown = ", ".join(sorted(blockers)[:3])
                self.plan.reasons[name] = f"conflicts with {shown} on every matching machine"
            else:
                req_md = req.options.metadata_requirements()
                self.plan.reasons[name] = (
                    f"no machine matches MachineMetadata {describe_metadata(req_md)}"
                    if machines
                    else "no machines in the cluster"
                )


def plan(
    units: Iterable[UnitRequest],
    machines: Iterable[Machine],
    current: Mapping[str, str] | None = None,
) -> Plan:
    """Where every unit should run, keeping current placements that still fit."""
    return _Planner(units, machines, current or {}).run()


def replan(
    units: Iterable[UnitRequest], machines: Iterable[Machine], previous: Plan
) -> Plan | None:
    """``plan(units, machines, previous.targets)``, placing only the units without a
    machine: ``units`` are the previous plan's (with the same options) and maybe new
    ones; ``machines`` are some of the previous plan's, with the same records.

    Without Conflicts= and Replaces= nothing evicts a unit, so every placement the
    previous plan made on a machine still here would be kept again (its record still
    matches; a MachineOf= follower sits with its peer, so it was lost with it or is kept
    with it, and a new unit is nobody's peer that has a machine); only the lost
    machines' units, the new ones and the ones left without a machine are placed, in
    the same order with the same loads: the same answer. With Conflicts= or Replaces=
    in the plan, or a unit of the previous plan missing: None (plan from scratch).
    """
    planner = _Planner(units, machines, previous.targets)
    if planner.with_conflicts or planner.with_replaces:
        return None
    requests = planner.requests
    known = set(previous.order)
    if not (known <= requests.keys() and previous.global_targets.keys() <= requests.keys()):
        return None  # a unit of the previous plan is gone
    added = [n for n in requests.keys() - known if not requests[n].options.global_]
    order: list[str] | None = previous.order
    if added:
        # with no MachineOf= anywhere the order is the names', sorted: merge the new ones
        chained = any(r.options.machine_of for r in requests.values())
        order = None if chained else sorted(previous.order + added)
    live = planner.board.machines
    kept = {n: m for n, m in previous.targets.items() if m in live}
    return planner.run(kept, order)
