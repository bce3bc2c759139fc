"""Whole agents under faults, on network-namespace hosts and one real etcd.

- The engine's leader agent is frozen (SIGSTOP) until its leadership lease lapses and
  another agent's engine takes over; the cluster changes meanwhile; then it runs again
  (SIGCONT). A watch opened before the freeze records every write: nothing written under
  schedule/ or unit-reasons/ after the takeover contradicts the state of that moment,
  nothing at all is written there after the resume, and the old leader steps down.
- `vulcano start` of a Global unit, while one matching machine's agent is frozen before
  it could report, keeps waiting for that machine and returns once all three run it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_root
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import kill_by_pid, pids_of, running_where
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.poll import wait_for
from vulcano.records import Assignment, DesiredState, UnitSource, UnitSpec
from vulcano.registry import Registry
from vulcano.watch import Change, PrefixWatch, snapshot

pytestmark = [pytest.mark.root, pytest.mark.slow]
KS = Keyspace()
SENTINEL = "/vulcano/zz-test-sentinel"
CLI_TIMEOUT = 90.0


@dataclass
class Agents:
    net: Underlay
    hosts: list[TestHost]
    store: Registry
    client: object
    marker: str
    dir: Path
    frozen: set[int] = field(default_factory=set)

    def sleeper(self, extra: str = "") -> str:
        return f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {self.marker}-%n\n{extra}"

    def leader(self) -> tuple[TestHost, int] | None:
        """The host whose engine leads, and the leader key's create revision."""
        value, meta = self.store.client.get(KS.engine_leader)
        if value is None:
            return None
        host = next((h for h in self.hosts if h.machine_id == value.decode()), None)
        return (host, meta.create_revision) if host is not None else None

    def freeze(self, host: TestHost) -> None:
        assert host.agent is not None
        os.kill(host.agent.pid, signal.SIGSTOP)
        self.frozen.add(host.agent.pid)

    def thaw(self, host: TestHost) -> None:
        assert host.agent is not None
        os.kill(host.agent.pid, signal.SIGCONT)
        self.frozen.discard(host.agent.pid)


@contextlib.contextmanager
def _agents(tmp_path: Path, ttl: int) -> Iterator[Agents]:
    require_root()
    marker = "vf" + secrets.token_hex(4)
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    with Underlay(tmp_path / "net") as net:
        hosts = net.add_hosts(3)
        net.init_network("10.244.0.0/16", 24)
        for h in hosts:
            h.start_agent("--metadata", "region=eu", ttl=ttl)
        for h in hosts:
            h.wait_overlay()
        client = net.etcd_client()
        store = Registry(client)
        agents = Agents(net, hosts, store, client, marker, units_dir)
        specs: list[str] = []
        try:
            yield agents
        finally:
            for pid in list(agents.frozen):  # a frozen agent cannot stop its units
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            with contextlib.suppress(Exception):  # teardown goes on whatever failed
                specs = list(store.specs())
                if specs:
                    store.destroy(specs)
                wait_for(lambda: not pids_of(marker), 15, "units stopped after destroy")
            client.close()  # type: ignore[attr-defined]
            for h in hosts:
                h.kill_agent()
            kill_by_pid(pids_of(marker))


@dataclass
class _Cluster:
    """Units, machines, placements and reasons as a watch replays them."""

    specs: dict[str, UnitSpec] = field(default_factory=dict)
    machines: set[str] = field(default_factory=set)
    schedule: dict[tuple[str, str], str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def apply(self, ch: Change) -> None:
        if ch.key.startswith(KS.units):
            name = ch.key[len(KS.units) :]
            if ch.value is None:
                self.specs.pop(name, None)
            else:
                self.specs[name] = UnitSpec.from_json(ch.value)
        elif ch.key.startswith(KS.machines):
            mid = ch.key[len(KS.machines) :]
            (self.machines.discard if ch.value is None else self.machines.add)(mid)
        elif ch.key.startswith(KS.schedule):
            machine, _, name = ch.key[len(KS.schedule) :].partition("/")
            if ch.value is None:
                self.schedule.pop((machine, name), None)
            else:
                self.schedule[(machine, name)] = ch.value.decode()
        elif ch.key.startswith(KS.unit_reasons):
            name = ch.key[len(KS.unit_reasons) :]
            if ch.value is None:
                self.reasons.pop(name, None)
            else:
                self.reasons[name] = ch.value.decode()

    def contradiction(self, ch: Change) -> str | None:
        """Why an engine write contradicts the cluster as it stands (None: it fits)."""
        if ch.key.startswith(KS.schedule):
            machine, _, name = ch.key[len(KS.schedule) :].partition("/")
            spec = self.specs.get(name)
            if ch.value is None:
                gone = spec is None or spec.desired == DesiredState.INACTIVE
                if gone or machine not in self.machines:
                    return None
                others = [m for m, n in self.schedule if n == name and m != machine]
                return None if others else f"deleted the only placement of {name}"
            if spec is None or spec.desired == DesiredState.INACTIVE:
                return f"placed {name}, which is not to be placed"
            if machine not in self.machines:
                return f"placed {name} on {machine}, which has no record"
            if ch.value.decode() != Assignment.of(spec).to_json():
                return f"placed {name} with a stale order {ch.value.decode()}"
        elif ch.key.startswith(KS.unit_reasons) and ch.value is not None:
            name = ch.key[len(KS.unit_reasons) :]
            if name not in self.specs:
                return f"explained {name}, which does not exist"
        return None


def _engine_write(ch: Change) -> bool:
    return ch.key.startswith(KS.schedule) or ch.key.startswith(KS.unit_reasons)


def _drain(watch: PrefixWatch) -> list[Change]:
    """Every change the watch saw up to the sentinel put after the test's last step."""
    out: list[Change] = []
    while True:
        item = watch.events.get(timeout=30)
        assert isinstance(item, list), f"the watch broke: {item}"
        for ch in item:
            if ch.key == SENTINEL:
                return out
            out.append(ch)


def _placed(store: Registry) -> dict[str, list[str]]:
    return {u: sorted(m) for u, m in store.placements().items()}


@pytest.mark.parametrize(
    "ttl",
    [
        pytest.param(3, id="its-machine-lapses-too"),
        # the machine lease outlives the engine's (10 s at most): the resumed leader still
        # has a machine and no grace to wait out, so it plans at once from its stale view
        # (its reasons for units, which it never re-reads) and tries to write
        pytest.param(30, id="its-machine-outlives-the-engine-lease"),
    ],
)
def test_a_frozen_leader_resumed_after_a_takeover_writes_nothing_and_steps_down(
    tmp_path: Path, ttl: int
) -> None:
    machine_lapses = ttl <= 3
    with _agents(tmp_path, ttl=ttl) as a:
        names = [f"p{i}.service" for i in range(4)]
        nowhere = a.sleeper("[X-Fleet]\nMachineMetadata=region=nowhere\n")
        elsewhere = a.sleeper("[X-Fleet]\nMachineMetadata=region=elsewhere\n")
        a.store.submit(
            [
                *[UnitSource(n, a.sleeper()) for n in names],
                UnitSource("x.service", nowhere),
                UnitSource("y.service", nowhere),
            ]
        )
        a.store.set_desired([*names, "x.service", "y.service"], DesiredState.LAUNCHED)
        wait_for(lambda: running_where(a.store, names), 30, "four units running")
        wait_for(
            lambda: a.store.client.get(KS.unit_reason("x.service"))[0], 15, "x's reason written"
        )
        old, old_term = wait_for(a.leader, 15, "an engine leader")

        prefixes = [KS.units, KS.machines, KS.schedule, KS.unit_reasons]
        revision, parts = snapshot(a.store.client, prefixes)
        seen = _Cluster()
        for part in parts:
            for ch in part:
                seen.apply(ch)
        watch = PrefixWatch(a.store.client, ["/vulcano/"], revision + 1)
        try:
            a.freeze(old)
            new, new_term = wait_for(
                lambda: (lead := a.leader()) and lead[1] != old_term and lead,
                30,
                "another engine leading",
            )
            assert new is not old
            if machine_lapses:
                wait_for(
                    lambda: (
                        all(old.machine_id not in ms for ms in _placed(a.store).values())
                        and running_where(a.store, names)
                    ),
                    40,
                    "the frozen machine's units moved and running",
                )
            # the cluster changes while the old leader sleeps: its view goes stale
            a.store.set_desired(["p0.service"], DesiredState.LOADED)
            a.store.destroy(["p1.service", "x.service"])
            # y stays unplaceable, for another reason: the old leader's record of the
            # reasons it wrote is stale now, and it would write this one again
            a.store.submit([UnitSource("y.service", elsewhere)], replace=True)
            # a new unit, on a machine that runs (the frozen one may still be in the cluster)
            pin = f"[X-Fleet]\nMachineID={new.machine_id}\n"
            a.store.submit([UnitSource("q.service", a.sleeper(pin))])
            a.store.set_desired(["q.service"], DesiredState.LAUNCHED)
            want = {"p0.service", "p2.service", "p3.service", "q.service"}
            moved = wait_for(
                lambda: (
                    (p := _placed(a.store)).keys() == want
                    and not (machine_lapses and any(old.machine_id in ms for ms in p.values()))
                    and a.store.client.get(KS.unit_reason("x.service"))[0] is None
                    and a.store.client.get(KS.unit_reason("y.service"))[0]
                    == b"no machine matches MachineMetadata region=elsewhere"
                    and running_where(a.store, ["p2.service", "p3.service", "q.service"])
                    and p
                ),
                40,
                "the new leader's placements",
            )
            if not machine_lapses:  # the scenario's premise: its machine is still there
                assert a.store.client.get(KS.machine(old.machine_id))[0] is not None
            resumed_at = snapshot(a.store.client, [])[0]
            a.thaw(old)
            assert old.agent is not None
            wait_for(
                lambda: f"engine: {old.machine_id} stepped down" in old.agent.log(),  # type: ignore[union-attr]
                30,
                "the old leader stepping down",
            )
            wait_for(
                lambda: a.store.client.get(KS.machine(old.machine_id))[0] is not None,
                30,
                "the old leader's machine announced",
            )
            a.store.client.put(SENTINEL, "end")
            changes = _drain(watch)
        finally:
            watch.cancel()

        contradictions = []
        for ch in changes:
            if ch.revision >= new_term and _engine_write(ch):
                why = seen.contradiction(ch)
                if why:
                    contradictions.append(f"r{ch.revision} {ch.key}: {why}")
            seen.apply(ch)
        assert contradictions == []
        assert [ch.key for ch in changes if ch.revision > resumed_at and _engine_write(ch)] == []
        assert _placed(a.store) == moved
        assert a.leader() == (new, new_term)
        log = old.agent.log()
        assert f"engine: {old.machine_id} is the leader" in log
        refused = f"engine: {old.machine_id} is no longer the leader: etcd refused its"
        if machine_lapses:
            assert refused in log or f"engine: {old.machine_id} lost leadership" in log
        else:
            assert refused in log  # it did try, and etcd said no
        assert running_where(a.store, ["p2.service", "p3.service", "q.service"])


def _follow(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_start_of_a_global_unit_waits_for_a_machine_that_has_not_reported_yet(
    tmp_path: Path,
) -> None:
    # A machine lease long enough that the frozen agent's machine stays in the cluster
    # (the test never waits on it: it thaws the agent as soon as the wait is shown).
    with _agents(tmp_path, ttl=20) as a:
        lead, _ = wait_for(a.leader, 15, "an engine leader")
        slow = next(h for h in a.hosts if h is not lead)
        unit = a.dir / "g.service"
        unit.write_text(a.sleeper("[X-Fleet]\nGlobal=true\nMachineMetadata=region=eu\n"))
        a.freeze(slow)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "container",
                "--endpoint",
                a.net.etcd_local_endpoint,
                "start",
                "--block-timeout",
                "60",
                str(unit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "VULCANO_STATE_DIR": str(tmp_path / "state")},
        )
        lines: list[str] = []
        reader = _follow(proc, lines)
        try:
            others = sorted(h.machine_id for h in a.hosts if h is not slow)
            waiting_note = f"g.service: waiting for machine {slow.machine_id[:8]}..."
            wait_for(
                lambda: waiting_note in lines or proc.poll() is not None,
                40,
                f"{waiting_note!r} from the CLI",
            )
            assert proc.poll() is None, "start returned while a machine was silent:\n" + "\n".join(
                lines
            )
            # the CLI saw the two others run it and still waits: the frozen one is silent
            active = sorted(
                s.machine_id or ""
                for s in a.store.machine_states()
                if s.name == "g.service" and s.active == "active"
            )
            assert active == others
            assert proc.poll() is None
            assert a.store.client.get(KS.machine(slow.machine_id))[0] is not None
            a.thaw(slow)
            assert proc.wait(timeout=CLI_TIMEOUT) == 0, "\n".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            reader.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        # when it returned, every machine ran it
        at_exit = sorted(
            s.machine_id or ""
            for s in a.store.machine_states()
            if s.name == "g.service" and s.active == "active"
        )
        assert at_exit == sorted(h.machine_id for h in a.hosts)
        assert any(line.startswith("Unit g.service launched on") for line in lines), lines
        assert len(pids_of(f"{a.marker}-g.service")) == 3
