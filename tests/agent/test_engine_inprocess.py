"""Engine + machine units + built-in runner against a real etcd (all in this process)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest
from click.testing import CliRunner, Result

from container.cli import main
from vulcano.lab.cluster import Node, kill_by_pid, main_pids, nodes, pids_of, running_where
from vulcano.lab.invariants import CopySampler, process_copies
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry


@pytest.fixture
def marker() -> str:
    return "vtest-" + secrets.token_hex(4)


@pytest.fixture
def store(etcd: Etcd) -> Iterator[Registry]:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    yield Registry(client)
    client.close()


@pytest.fixture
def cluster(etcd: Etcd, tmp_path: Path, marker: str, store: Registry) -> Iterator[list[Node]]:
    ids = [f"m{i}{secrets.token_hex(5)}" for i in range(3)]
    try:
        with nodes(etcd.endpoint, tmp_path, sorted(ids), ttl=3) as ns:
            yield ns
            # destroy while the agents run, so they stop their units
            specs = list(store.specs())
            if specs:
                store.destroy(specs)
            wait_for(lambda: not pids_of(marker), 15, "every unit process gone")
    finally:
        kill_by_pid(pids_of(marker))


def sleeper(marker: str, extra: str = "") -> str:
    return (
        f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}-%n\nTimeoutStopSec=3\n" + extra
    )


def test_conflicting_instances_land_one_per_machine_and_run(
    cluster: list[Node], store: Registry, marker: str
) -> None:
    store.submit([UnitSource("web@.service", sleeper(marker, "[X-Fleet]\nConflicts=web@*\n"))])
    names = [f"web@{i}.service" for i in (1, 2, 3)]
    store.set_desired(names, DesiredState.LAUNCHED)
    where = wait_for(lambda: running_where(store, names), 30, "three instances running")
    assert sorted(where.values()) == sorted(n.member.machine_id for n in cluster)
    assert len(pids_of(marker)) == 3
    for n in names:
        assert pids_of(f"{marker}-{n}")


def test_unplaceable_unit_says_why(cluster: list[Node], store: Registry, marker: str) -> None:
    store.submit(
        [UnitSource("eu.service", sleeper(marker, "[X-Fleet]\nMachineMetadata=region=eu\n"))]
    )
    store.set_desired(["eu.service"], DesiredState.LAUNCHED)
    st = wait_for(lambda: store.states().get("eu.service"), 20, "a state with a reason")
    assert st.reason == "no machine matches MachineMetadata region=eu"
    assert st.machine_id is None


def test_global_unit_runs_on_every_machine(
    cluster: list[Node], store: Registry, marker: str
) -> None:
    store.submit([UnitSource("g.service", sleeper(marker, "[X-Fleet]\nGlobal=true\n"))])
    store.set_desired(["g.service"], DesiredState.LAUNCHED)
    wait_for(lambda: len(pids_of(marker)) == 3, 30, "one copy per machine")
    placements = store.placements()["g.service"]
    assert sorted(placements) == sorted(n.member.machine_id for n in cluster)


def test_stop_unload_destroy_leave_no_process(
    cluster: list[Node], store: Registry, marker: str
) -> None:
    store.submit([UnitSource("s.service", sleeper(marker))])
    store.set_desired(["s.service"], DesiredState.LAUNCHED)
    wait_for(lambda: running_where(store, ["s.service"]), 30, "s running")
    assert len(pids_of(marker)) == 1
    store.set_desired(["s.service"], DesiredState.LOADED)
    wait_for(lambda: not pids_of(marker), 20, "no process after stop")
    st = wait_for(
        lambda: (s := store.states().get("s.service")) and s.active == "inactive" and s,
        20,
        "inactive state",
    )
    assert st.load == "loaded"
    store.set_desired(["s.service"], DesiredState.LAUNCHED)
    wait_for(lambda: pids_of(marker), 20, "running again")
    store.set_desired(["s.service"], DesiredState.INACTIVE)
    wait_for(lambda: not pids_of(marker), 20, "no process after unload")
    wait_for(lambda: "s.service" not in store.states(), 20, "state gone after unload")
    store.set_desired(["s.service"], DesiredState.LAUNCHED)
    wait_for(lambda: pids_of(marker), 20, "running again")
    store.destroy(["s.service"])
    wait_for(lambda: not pids_of(marker), 20, "no process after destroy")
    assert store.spec("s.service") is None


def test_machine_whose_lease_lapses_stops_its_units_and_they_move(
    cluster: list[Node], store: Registry, marker: str
) -> None:
    store.submit([UnitSource("mv.service", sleeper(marker))])
    store.set_desired(["mv.service"], DesiredState.LAUNCHED)
    first = wait_for(lambda: running_where(store, ["mv.service"]), 30, "running")["mv.service"]
    victim = next(n for n in cluster if n.member.machine_id == first)
    [old_pid] = main_pids(marker)
    sampler = CopySampler(process_copies({"mv.service": f"{marker}-mv.service"})).start()
    try:
        sampler.mark_fault()
        victim.member.pause()  # cut off: no more lease refreshes
        wait_for(lambda: victim.units.fenced.is_set(), 10, "the cut-off agent fenced itself")
        moved = wait_for(
            lambda: (w := running_where(store, ["mv.service"])) and w["mv.service"] != first and w,
            30,
            "the unit running on another machine",
        )
        assert old_pid not in pids_of(marker)
        sampler.mark_gone()
    finally:
        report = sampler.stop()
    report.check(100, ["mv.service"])  # never two copies, from the cut to the move
    assert moved["mv.service"] != first
    assert len(pids_of(marker)) == 1


def test_engine_leadership_moves_when_the_leader_goes(
    cluster: list[Node], store: Registry, marker: str
) -> None:
    leader = wait_for(
        lambda: [n for n in cluster if n.engine and n.engine.is_leader.is_set()], 15, "a leader"
    )
    assert len(leader) == 1
    leader[0].engine.stop()  # type: ignore[union-attr]
    others = [n for n in cluster if n is not leader[0]]
    wait_for(
        lambda: any(n.engine and n.engine.is_leader.is_set() for n in others), 20, "a new leader"
    )
    store.submit([UnitSource("after.service", sleeper(marker))])
    store.set_desired(["after.service"], DesiredState.LAUNCHED)
    wait_for(lambda: running_where(store, ["after.service"]), 30, "placed by the new leader")


def _cli(etcd: Etcd, *args: str) -> Result:
    # the audit log in the etcd's own directory, not the machine's /var/lib/vulcano
    state = {"VULCANO_STATE_DIR": str(etcd.data_dir.parent / "vulcano-state")}
    return CliRunner(env=state).invoke(main, ["--endpoint", etcd.endpoint, *args])


def test_cli_start_waits_then_status_and_journal_show_the_output(
    cluster: list[Node], etcd: Etcd, tmp_path: Path, marker: str
) -> None:
    unit = tmp_path / "hello@.service"
    unit.write_text(
        f"[Service]\nExecStart=/bin/sh -c 'echo hello from %n on %m; sleep 1000; :' {marker}-%n\n"
    )
    r = _cli(etcd, "start", str(unit), "hello@1.service")
    assert r.exit_code == 0, r.output
    assert "Unit hello@1.service launched on " in r.output
    st = Registry(cluster[0].member.client).states()["hello@1.service"]
    wait_for(
        lambda: (
            "hello from hello@1.service on " + str(st.machine_id)
            in _cli(etcd, "journal", "hello@1.service").output
        ),
        20,
        "the unit's output in its journal",
    )
    r = _cli(etcd, "status", "hello@1.service")
    assert r.exit_code == 0
    assert "Active: active (running)" in r.output
    assert f"Machine: {st.machine_id}/" in r.output or f"Machine: {st.machine_id}" in r.output
    r = _cli(etcd, "stop", "hello@1.service")
    assert r.exit_code == 0, r.output
    r = _cli(etcd, "status", "hello@1.service")
    assert r.exit_code == 3 and "Active: inactive (dead)" in r.output


def test_global_unit_lists_one_row_per_machine(
    cluster: list[Node], etcd: Etcd, tmp_path: Path, marker: str
) -> None:
    unit = tmp_path / "everywhere.service"
    unit.write_text(sleeper(marker, "[X-Fleet]\nGlobal=yes\n"))
    r = _cli(etcd, "start", str(unit))
    assert r.exit_code == 0, r.output
    rows = _cli(etcd, "list-units", "--no-legend", "--full").output.splitlines()
    machines = sorted(n.member.machine_id for n in cluster)
    assert sorted(rows) == [f"everywhere.service\t{m}\tactive\trunning" for m in machines]
    r = _cli(etcd, "list-unit-files", "--no-legend")
    assert r.output.split("\t")[-1].strip() == "global"


def test_replace_restarts_the_unit_with_the_new_content(
    cluster: list[Node], store: Registry, etcd: Etcd, tmp_path: Path, marker: str
) -> None:
    unit = tmp_path / "ver.service"
    unit.write_text(f"[Service]\nExecStart=/bin/sh -c 'echo v1; sleep 1000; :' {marker}-v1\n")
    assert _cli(etcd, "start", str(unit)).exit_code == 0
    [old] = main_pids(f"{marker}-v1")
    unit.write_text(f"[Service]\nExecStart=/bin/sh -c 'echo v2; sleep 1000; :' {marker}-v2\n")
    r = _cli(etcd, "start", str(unit))
    assert r.exit_code == 1 and "use --replace" in r.output
    r = _cli(etcd, "start", "--replace", str(unit))
    assert r.exit_code == 0, r.output
    wait_for(lambda: pids_of(f"{marker}-v2"), 20, "v2 running")
    wait_for(lambda: old not in pids_of(marker), 20, "v1 gone")
    assert store.states()["ver.service"].hash == store.spec("ver.service").hash  # type: ignore[union-attr]


def test_a_failed_unit_starts_again_when_asked_and_sandbox_needs_an_overlay(
    cluster: list[Node], store: Registry, marker: str, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    store.submit(
        [
            UnitSource(
                "retry.service",
                f"[Service]\nExecStartPre=/bin/test -e {flag}\n"
                f"ExecStart=/bin/sh -c 'sleep 1000; :' {marker}\n",
            ),
            UnitSource("boxed.service", sleeper(marker, "[X-Vulcano]\nSandbox=yes\n")),
        ]
    )
    store.set_desired(["retry.service", "boxed.service"], DesiredState.LAUNCHED)
    wait_for(
        lambda: (s := store.states().get("retry.service")) and s.active == "failed", 20, "failed"
    )
    st = wait_for(
        lambda: (s := store.states().get("boxed.service")) and s.active == "failed" and s,
        20,
        "the sandbox unit refused",
    )
    assert st.reason == "this machine has no overlay for Sandbox= units"
    flag.touch()
    store.set_desired(["retry.service"], DesiredState.LAUNCHED)  # `vulcano start` again
    wait_for(lambda: running_where(store, ["retry.service"]), 20, "running after a new start")
