"""The cluster's registry in etcd: units' desired state, placements, states, machines.

What the CLI writes and the engine and the agents read, one record type per key
(`vulcano.records`). Every change is an etcd transaction that compares the revision it
read, so two operators (or an operator and the engine) never overwrite each other; a
batch is validated completely before the first write, so bad input changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

from vulcano import policy, unitnames, units
from vulcano.errors import VulcanoError
from vulcano.etcdhttp.wire import prefix_range_end, to_bytes
from vulcano.keyspace import Keyspace
from vulcano.records import DesiredState, Machine, UnitSource, UnitSpec, UnitState
from vulcano.txn_batches import TXN_MAX_OPS, chunks, in_flight, txn_chunks
from vulcano.units import FleetOptions


class RegistryError(VulcanoError):
    """A unit command that cannot be done as asked.

    ``done``: the units the command had already changed when it failed (a batch larger
    than one transaction, whose later part lost a race it could not win); empty when it
    changed nothing.
    """

    done: tuple[str, ...] = ()


class UnitNotFound(RegistryError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnitContentConflict(RegistryError, ValueError):
    """A unit already submitted with other content (fleet: destroy first, or --replace)."""


def _moved(spec: UnitSpec, desired: DesiredState) -> UnitSpec | None:
    """``spec`` moved to ``desired``; None when that changes nothing."""
    if desired == DesiredState.LAUNCHED:
        # every start counts, so a unit that failed is tried again
        return dataclasses.replace(spec, desired=desired, starts=spec.starts + 1)
    if spec.desired == desired:
        return None
    return dataclasses.replace(spec, desired=desired)


def _partly_done(exc: RegistryError, done: list[str]) -> RegistryError:
    """``exc``, saying which units the command had changed before it (none: as it is)."""
    if not done:
        return exc
    shown = ", ".join(done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
    out = type(exc)(f"{exc} (changed before that: {shown})")
    out.done = tuple(done)
    return out


class Registry:
    """The unit commands (submit, load, start, stop, unload, destroy) and the reads."""

    def __init__(self, client: Any, keyspace: Keyspace | None = None) -> None:
        self.client = client
        self.ks = keyspace or Keyspace()
        self.requests = 0  # etcd requests made, for the benchmark

    # --- reads ----------------------------------------------------------------

    def _get(self, key: str) -> tuple[bytes | None, Any]:
        self.requests += 1
        return self.client.get(key)  # type: ignore[no-any-return]

    def _get_prefix(self, prefix: str) -> list[tuple[bytes, Any]]:
        self.requests += 1
        return list(self.client.get_prefix(prefix))

    def specs(self) -> dict[str, UnitSpec]:
        return {
            s.name: s for s in (UnitSpec.from_json(v) for v, _ in self._get_prefix(self.ks.units))
        }

    def spec(self, name: str) -> UnitSpec | None:
        value, _ = self._get(self.ks.unit_spec(name))
        return UnitSpec.from_json(value) if value is not None else None

    def text(self, digest: str) -> str | None:
        value, _ = self._get(self.ks.unit_file(digest))
        return value.decode("utf-8") if value is not None else None

    def machine_states(self) -> list[UnitState]:
        """Every runner's report (one per unit per machine), then the engine's reasons
        for units no runner reports on."""
        out = [UnitState.from_json(v) for v, _ in self._get_prefix(self.ks.unit_states)]
        reported = {s.name for s in out}
        plen = len(self.ks.unit_reasons)
        for value, meta in self._get_prefix(self.ks.unit_reasons):
            name = meta.key.decode()[plen:]
            if name not in reported:
                out.append(UnitState(name=name, reason=value.decode()))
        return sorted(out, key=lambda s: (s.name, s.machine_id or ""))

    def states(self) -> dict[str, UnitState]:
        """One state per unit: an active report if any, else the latest (or the reason)."""
        best: dict[str, UnitState] = {}
        for s in self.machine_states():
            cur = best.get(s.name)
            if cur is None or (s.active == "active", s.since) > (cur.active == "active", cur.since):
                best[s.name] = s
        return best

    def machines(self) -> list[Machine]:
        out = [
            Machine.from_json(v, meta.lease_id) for v, meta in self._get_prefix(self.ks.machines)
        ]
        return sorted(out, key=lambda m: m.id)

    def decommissioned(self) -> set[str]:
        """Ids of the machines removed on purpose (no place for units, record or not)."""
        plen = len(self.ks.decommissioned)
        return {
            meta.key.decode()[plen:] for _, meta in self._get_prefix_keys(self.ks.decommissioned)
        }

    def placements(self) -> dict[str, list[str]]:
        """unit → machine ids it is assigned to (one, or many for a Global unit)."""
        out: dict[str, list[str]] = {}
        plen = len(self.ks.schedule)
        for _, meta in self._get_prefix(self.ks.schedule):
            machine, _, name = meta.key.decode()[plen:].partition("/")
            out.setdefault(name, []).append(machine)
        return out

    def journal(self, name: str) -> list[str]:
        """The unit's last lines of output, as its runner published them."""
        value, _ = self._get(self.ks.unit_journal(name))
        if value is None:
            return []
        lines: list[str] = json.loads(value)["lines"]
        return lines

    def journal_seq(self, name: str) -> int:
        """How many lines the unit has printed so far (to follow the journal)."""
        value, _ = self._get(self.ks.unit_journal(name))
        return int(json.loads(value)["seq"]) if value is not None else 0

    # --- writes ---------------------------------------------------------------

    def _read_many(self, names: list[str]) -> dict[str, tuple[UnitSpec, int]]:
        """Current specs and their mod revisions, in one request when there are many."""
        found: dict[str, tuple[UnitSpec, int]] = {}
        if len(names) > 8:
            wanted = set(names)
            for value, meta in self._get_prefix(self.ks.units):
                spec = UnitSpec.from_json(value)
                if spec.name in wanted:
                    found[spec.name] = (spec, meta.mod_revision)
            return found
        for name in names:
            raw, meta = self._get(self.ks.unit_spec(name))
            if raw is not None:
                found[name] = (UnitSpec.from_json(raw), meta.mod_revision)
        return found

    def _commit(self, plan: list[tuple[str, int, list[Any]]]) -> list[str]:
        """Run (name, expected mod revision or 0 for absent, ops) in batched transactions.

        Returns the names whose compare failed (someone else changed them meanwhile).
        """
        t = self.client.transactions
        txns = []
        for chunk, ops in txn_chunks(plan):
            compares = [
                t.mod(self.ks.unit_spec(name)) == rev
                if rev
                else t.version(self.ks.unit_spec(name)) == 0
                for name, rev, _ in chunk
            ]
            if ops:
                txns.append((chunk, compares, ops))

        def send(txn: tuple[list[Any], list[Any], list[Any]]) -> bool:
            ok, _ = self.client.transaction(compare=txn[1], success=txn[2], failure=[])
            return bool(ok)

        self.requests += len(txns)
        results = in_flight(send, txns)
        return [
            name
            for (chunk, _, _), ok in zip(txns, results, strict=True)
            if not ok
            for name, _, _ in chunk
        ]

    def _retrying(
        self, names: list[str], step: Any, read: dict[str, tuple[UnitSpec, int]] | None = None
    ) -> None:
        """Apply ``step(name, current, rev) -> ops`` to every name; retry lost races until
        UNIT_COMMAND_RETRY_SECONDS pass without progress (a huge batch's pass takes long).
        ``read``: the names' specs just read (the first pass needs not read them again)."""
        deadline = time.monotonic() + policy.UNIT_COMMAND_RETRY_SECONDS
        pending = list(dict.fromkeys(names))
        done: list[str] = []
        for delay in policy.TXN_CONFLICT.delays():
            current = read if read is not None else self._read_many(pending)
            read = None
            plan = []
            try:
                for name in pending:
                    spec, rev = current.get(name, (None, 0))
                    ops = step(name, spec, rev, current)
                    if ops is not None:
                        plan.append((name, rev, ops))
            except RegistryError as exc:
                raise _partly_done(exc, done) from None
            lost = self._commit(plan)
            progress = [name for name, _, _ in plan if name not in lost]
            done, pending, now = done + progress, lost, time.monotonic()
            if not lost or (now >= deadline and not progress):
                break
            deadline = max(deadline, now + policy.UNIT_COMMAND_RETRY_SECONDS * bool(progress))
            time.sleep(min(delay, max(0.0, deadline - now)))
        if not pending:
            return
        raise _partly_done(
            RegistryError(
                "gave up after racing other writers on: " + ", ".join(sorted(pending)[:5])
            ),
            done,
        )

    def submit(
        self,
        sources: Iterable[UnitSource],
        replace: bool = False,
        desired: DesiredState | None = None,
    ) -> list[str]:
        """Store unit files (content once, by hash) as inactive units; validate all first.

        With ``desired`` (fleetctl's load or start of files), every unit that is not a
        template moves to it in the transaction that stores its file, as `set_desired`
        would move it next (a template's file only brings the content).
        """
        parsed: dict[str, tuple[str, FleetOptions]] = {}
        for src in sources:
            if src.text is None:
                continue
            unit, opts = units.load(src.text, src.name)
            parsed[src.name] = (unit.hash, opts)
        bodies = {src.name: src.text for src in sources if src.text is not None}
        movable = set() if desired is None else {n for n in parsed if not unitnames.is_template(n)}

        def step(name: str, spec: UnitSpec | None, rev: int, _: dict[str, Any]) -> list[Any] | None:
            digest, opts = parsed[name]
            t = self.client.transactions
            to = desired if name in movable else None
            if spec is not None and spec.hash == digest:  # the same content again
                moved = _moved(spec, to) if to is not None else None
                return None if moved is None else [t.put(self.ks.unit_spec(name), moved.to_json())]
            if spec is not None and not replace:
                raise UnitContentConflict(
                    f"{name} is already submitted with different content "
                    f"(hash {spec.hash[:7]}, new {digest[:7]}): destroy it first or use --replace"
                )
            was = spec.desired if spec is not None else DesiredState.INACTIVE
            new = UnitSpec(name, digest, was, opts)
            new = (_moved(new, to) if to is not None else None) or new
            return [
                t.put(self.ks.unit_file(digest), bodies[name]),
                t.put(self.ks.unit_spec(name), new.to_json()),
            ]

        # Refuse a content conflict before writing anything at all.
        current = self._read_many(list(parsed))
        if not replace:
            for name, (spec, _) in current.items():
                if spec.hash != parsed[name][0]:
                    step(name, spec, 0, {})
        self._retrying(list(parsed), step, current)
        if replace and any(spec.hash != parsed[n][0] for n, (spec, _) in current.items()):
            self.collect_garbage()  # the replaced content may be unused now
        return list(parsed)

    def set_desired(self, names: Iterable[str], desired: DesiredState) -> list[str]:
        """Move units to a desired state; an instance of a submitted template is created."""
        desired = DesiredState(desired)
        names = list(dict.fromkeys(names))
        for name in names:
            unitnames.parse_name(name)
        # resolve instances of templates up front so a missing unit changes nothing
        templates: dict[str, UnitSpec] = {}
        current = self._read_many(names)
        for name in names:
            if name in current:
                if current[name][0].desired != desired and unitnames.parse_name(name).is_template:
                    raise RegistryError(f"{name} is a template: start an instance of it instead")
                continue
            template = unitnames.parse_name(name).template
            spec = self.spec(template) if template else None
            if spec is None:
                hint = f" (nor its template {template})" if template else ""
                raise UnitNotFound(f"unit {name} is not submitted{hint}")
            templates[name] = spec

        def step(name: str, spec: UnitSpec | None, rev: int, _: dict[str, Any]) -> list[Any] | None:
            t = self.client.transactions
            content: list[Any] = []
            if spec is None:
                tmpl = templates.get(name)
                if tmpl is None:
                    raise UnitNotFound(f"unit {name} was destroyed meanwhile")
                text = self.text(tmpl.hash)
                if text is None:  # the template was destroyed and its content collected
                    raise UnitNotFound(
                        f"unit {name}: its template {unitnames.parse_name(name).template} "
                        "was destroyed meanwhile"
                    )
                opts = units.load(text, name)[1]
                spec = UnitSpec(name, tmpl.hash, DesiredState.INACTIVE, opts)
                # the content again, with the new instance: a garbage collection racing
                # this start (the template destroyed meanwhile) cannot leave it without
                content = [t.put(self.ks.unit_file(tmpl.hash), text)]
            new = _moved(spec, desired)
            return (
                None if new is None else [*content, t.put(self.ks.unit_spec(name), new.to_json())]
            )

        self._retrying(names, step, current)
        return names

    def destroy(self, names: Iterable[str]) -> list[str]:
        """Remove units; the engine then takes their placements away."""
        names = list(dict.fromkeys(names))
        current = self._read_many(names)
        missing = [n for n in names if n not in current]
        if missing:
            raise UnitNotFound(f"unit {missing[0]} is not submitted")

        def step(name: str, spec: UnitSpec | None, rev: int, _: dict[str, Any]) -> list[Any] | None:
            if spec is None:
                return None
            t = self.client.transactions
            return [
                t.delete(self.ks.unit_spec(name)),
                t.delete(
                    self.ks.unit_state_prefix(name),
                    prefix_range_end(to_bytes(self.ks.unit_state_prefix(name))),
                ),
                t.delete(self.ks.unit_reason(name)),
                t.delete(self.ks.unit_journal(name)),
            ]

        self._retrying(names, step)
        self.collect_garbage()
        return names

    def collect_garbage(self) -> int:
        """Delete unit-file contents no unit refers to any more; how many went.

        Safe against a concurrent submit: the deletes only happen if no unit spec was
        written since the specs were read (a range compare on their mod revisions).
        """
        self.requests += 1
        response = self.client.get_prefix_response(self.ks.units)
        revision = response.header.revision
        used = {UnitSpec.from_json(kv.value).hash for kv in response.kvs}
        plen = len(self.ks.unit_files)
        orphans = [
            meta.key.decode()
            for _, meta in self._get_prefix_keys(self.ks.unit_files)
            if meta.key.decode()[plen:] not in used
        ]
        t = self.client.transactions
        unchanged = t.mod(self.ks.units, prefix_range_end(to_bytes(self.ks.units)))
        deleted = 0
        for chunk in chunks(orphans, TXN_MAX_OPS):
            self.requests += 1
            ok, _ = self.client.transaction(
                compare=[unchanged < revision + 1],
                success=[t.delete(key) for key in chunk],
                failure=[],
            )
            if not ok:
                break  # someone submitted meanwhile: leave it for the next time
            deleted += len(chunk)
        return deleted

    def _get_prefix_keys(self, prefix: str) -> list[tuple[bytes, Any]]:
        self.requests += 1
        return list(self.client.get_prefix(prefix, keys_only=True))
