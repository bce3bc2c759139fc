"""Whole agents (`vulcano-agent run`) on network-namespace hosts, one real etcd, the overlay.

Units are submitted with the `vulcano` CLI; what runs is checked by process, by HTTP over
the overlay, and by the state the agents publish.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.agent.fleet import TTL, Fleet
from vulcano.lab.cluster import running_where
from vulcano.lab.netns import TestHost
from vulcano.lab.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
# A failover lasts seconds; a sampler every few ms takes hundreds of samples in it.
MIN_SAMPLES = 100


def _http_get(host: TestHost, ip: str, port: int) -> str:
    code = (
        "import urllib.request,sys;"
        f"print(urllib.request.urlopen('http://{ip}:{port}/', timeout=5).read().decode())"
    )
    return host.exec([sys.executable, "-c", code], check=False).stdout.strip()


def test_web_instances_spread_and_serve_http_from_sandboxes_over_the_overlay(
    fleet: Fleet,
) -> None:
    www = fleet.dir / f"{fleet.marker}-www"
    web = fleet.unit_file(
        "web@.service",
        "[Unit]\nDescription=web %i\n\n[Service]\n"
        f"ExecStartPre=/bin/sh -c 'mkdir -p {www}-%i && echo hello from %n > {www}-%i/index.html'\n"
        f"ExecStart=/usr/bin/python3 -m http.server 8080 --directory {www}-%i\n"
        "Restart=on-failure\n\n[X-Vulcano]\nSandbox=yes\n\n[X-Fleet]\nConflicts=web@*\n",
    )
    assert fleet.cli("submit", web).exit_code == 0
    r = fleet.cli("start", "--block-timeout", "60", *[f"web@{i}.service" for i in (1, 2, 3)])
    assert r.exit_code == 0, r.output
    names = [f"web@{i}.service" for i in (1, 2, 3)]
    where = running_where(fleet.store, names)
    assert where is not None
    assert sorted(where.values()) == sorted(h.machine_id for h in fleet.hosts)
    states = fleet.store.states()
    for name in names:
        ip = states[name].sandbox_ip
        assert ip and ip.startswith("10.244.")
        home = fleet.host_of(where[name])
        for other in fleet.hosts:
            if other is home:
                continue
            body = wait_for(lambda o=other, i=ip: _http_get(o, i, 8080), 20, f"{name} over HTTP")
            assert body == f"hello from {name}"
    r = fleet.cli("list-units", "--no-legend", "--fields", "unit,active,sub")
    assert r.output.splitlines() == [f"{n}\tactive\trunning" for n in names]


def test_placement_options_on_real_agents(fleet: Fleet) -> None:
    eu = sorted(h.machine_id for h in fleet.hosts if h.index in (0, 2))
    us = fleet.hosts[1].machine_id
    pinned = fleet.hosts[2].machine_id
    files = [
        fleet.unit_file(
            "g.service", fleet.sleeper("[X-Fleet]\nGlobal=true\nMachineMetadata=region=eu\n")
        ),
        fleet.unit_file("db.service", fleet.sleeper()),
        fleet.unit_file("side.service", fleet.sleeper("[X-Fleet]\nMachineOf=db.service\n")),
        fleet.unit_file("us.service", fleet.sleeper("[X-Fleet]\nMachineMetadata=region=us\n")),
        fleet.unit_file("pin.service", fleet.sleeper(f"[X-Fleet]\nMachineID={pinned}\n")),
        fleet.unit_file("nowhere.service", fleet.sleeper("[X-Fleet]\nMachineMetadata=region=ap\n")),
    ]
    r = fleet.cli("start", "--block-timeout", "60", *files[:5])
    assert r.exit_code == 0, r.output
    assert sorted(fleet.store.placements()["g.service"]) == eu
    assert len(fleet.pids("g.service")) == 2
    where = running_where(fleet.store, ["db.service", "side.service", "us.service", "pin.service"])
    assert where is not None
    assert where["side.service"] == where["db.service"]
    assert where["us.service"] == us
    assert where["pin.service"] == pinned
    r = fleet.cli("start", "--no-block", files[5])
    assert r.exit_code == 0
    st = wait_for(lambda: fleet.store.states().get("nowhere.service"), 20, "a reason")
    assert st.reason == "no machine matches MachineMetadata region=ap"
    r = fleet.cli("list-unit-files", "--fields", "unit,reason", "--no-legend")
    assert "nowhere.service\tno machine matches MachineMetadata region=ap" in r.output

    # Replaces: the new unit takes db's machine, db moves elsewhere (its sidekick too)
    new = fleet.unit_file("new.service", fleet.sleeper("[X-Fleet]\nReplaces=db.service\n"))
    db_home = where["db.service"]
    r = fleet.cli("start", "--block-timeout", "60", new)
    assert r.exit_code == 0, r.output
    after = wait_for(
        lambda: (
            (w := running_where(fleet.store, ["new.service", "db.service", "side.service"]))
            and w["db.service"] != db_home
            and w["side.service"] == w["db.service"]
            and sum(r.name in ("db.service", "side.service") for r in fleet.store.machine_states())
            == 2
            and w
        ),
        30,
        "db.service (and its sidekick) moved away by new.service",
    )
    assert after["new.service"] == db_home
    assert after["side.service"] == after["db.service"]  # the sidekick followed
    assert len(fleet.pids("db.service")) == 1 and len(fleet.pids("side.service")) == 1


def test_sigkilled_agent_units_move_and_nothing_runs_twice_when_it_returns(
    fleet: Fleet,
) -> None:
    files = [
        fleet.unit_file("mv.service", fleet.sleeper()),
        fleet.unit_file("mvside.service", fleet.sleeper("[X-Fleet]\nMachineOf=mv.service\n")),
    ]
    assert fleet.cli("start", "--block-timeout", "60", *files).exit_code == 0
    where = running_where(fleet.store, ["mv.service", "mvside.service"])
    assert where is not None
    victim = fleet.host_of(where["mv.service"])
    old = fleet.pids("mv.service") + fleet.pids("mvside.service")
    assert len(old) == 2
    sampler = fleet.sampler("mv.service", "mvside.service")
    try:
        sampler.mark_fault()
        victim.kill_agent()
        killed = time.monotonic()
        moved = wait_for(
            lambda: (
                (w := running_where(fleet.store, ["mv.service", "mvside.service"]))
                and w["mv.service"] != victim.machine_id
                and w
            ),
            (TTL + 3) * 3,  # generous on a shared machine; the bench reports the real time
            "units running on another machine",
        )
        print(f"failover took {time.monotonic() - killed:.1f}s (TTL {TTL}s)")
        assert moved["mvside.service"] == moved["mv.service"]
        assert not set(old) & set(fleet.pids("mv.service") + fleet.pids("mvside.service"))
        # the host comes back: it must not start what moved, not even for a moment
        region = "us" if victim.index == 1 else "eu"
        victim.start_agent("--metadata", f"region={region}", ttl=TTL)
        wait_for(
            lambda: victim.machine_id in {m.id for m in fleet.store.machines()}, 20, "host back"
        )
        time.sleep(TTL)  # the returned agent's first reconciliations, still sampled
        sampler.mark_gone()
    finally:
        report = sampler.stop()
    report.check(MIN_SAMPLES, ["mv.service", "mvside.service"])
    assert len(fleet.pids("mv.service")) == 1
    assert len(fleet.pids("mvside.service")) == 1
    assert running_where(fleet.store, ["mv.service"]) == {"mv.service": moved["mv.service"]}


def test_host_cut_off_from_etcd_stops_its_units(fleet: Fleet) -> None:
    f = fleet.unit_file("cut.service", fleet.sleeper())
    assert fleet.cli("start", "--block-timeout", "60", f).exit_code == 0
    where = running_where(fleet.store, ["cut.service"])
    assert where is not None
    host = fleet.host_of(where["cut.service"])
    [pid] = fleet.pids("cut.service")
    gateway = fleet.net.gateway
    sampler = fleet.sampler("cut.service")
    try:
        sampler.mark_fault()
        host.exec(["ip", "route", "add", "blackhole", f"{gateway}/32"])
        try:
            wait_for(lambda: pid not in fleet.pids("cut.service"), (TTL + 3) * 3, "unit fenced")
            wait_for(
                lambda: (
                    (w := running_where(fleet.store, ["cut.service"]))
                    and w["cut.service"] != host.machine_id
                ),
                (TTL + 3) * 3,
                "unit running elsewhere",
            )
        finally:
            host.exec(["ip", "route", "del", "blackhole", f"{gateway}/32"], check=False)
        wait_for(
            lambda: host.machine_id in {m.id for m in fleet.store.machines()}, 30, "host rejoined"
        )
        time.sleep(TTL)  # the rejoined agent's first reconciliations, still sampled
        sampler.mark_gone()
    finally:
        report = sampler.stop()
    report.check(MIN_SAMPLES, ["cut.service"])
    assert len(fleet.pids("cut.service")) == 1


def _restart(host: TestHost, how: str) -> None:
    if how == "sigterm":
        host.stop_agent()
    else:
        host.kill_agent()
    region = "us" if host.index == 1 else "eu"
    host.start_agent("--metadata", f"region={region}", ttl=TTL)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_agent_restart_does_not_restart_running_units(fleet: Fleet, how: str) -> None:
    f = fleet.unit_file("keep.service", fleet.sleeper())
    assert fleet.cli("start", "--block-timeout", "60", f).exit_code == 0
    where = running_where(fleet.store, ["keep.service"])
    assert where is not None
    host = fleet.host_of(where["keep.service"])
    [pid] = fleet.pids("keep.service")
    _restart(host, how)
    wait_for(lambda: host.machine_id in {m.id for m in fleet.store.machines()}, 20, "agent back")
    time.sleep(TTL + 2)  # past the old lease and every grace period
    assert fleet.pids("keep.service") == [pid]
    assert running_where(fleet.store, ["keep.service"]) == {"keep.service": host.machine_id}


def test_stop_unload_destroy_leave_no_process_in_the_cluster(fleet: Fleet) -> None:
    files = [fleet.unit_file(f"s{i}.service", fleet.sleeper()) for i in range(3)]
    names = [Path(f).name for f in files]
    assert fleet.cli("start", "--block-timeout", "60", *files).exit_code == 0
    assert sum(len(fleet.pids(n)) for n in names) == 3
    r = fleet.cli("stop", "--block-timeout", "30", names[0])
    assert r.exit_code == 0, r.output
    assert fleet.pids(names[0]) == []
    r = fleet.cli("unload", "--block-timeout", "30", names[1])
    assert r.exit_code == 0, r.output
    assert fleet.pids(names[1]) == []
    assert fleet.cli("destroy", names[2]).exit_code == 0
    wait_for(lambda: fleet.pids(names[2]) == [], 20, "destroyed unit gone")
    r = fleet.cli("list-unit-files", "--no-legend", "--fields", "unit,dstate,state")
    assert r.output.splitlines() == [
        f"{names[0]}\tloaded\tloaded",
        f"{names[1]}\tinactive\tinactive",
    ]


def test_stalled_agent_units_are_fenced_by_their_supervisors(fleet: Fleet) -> None:
    """SIGSTOP, not SIGKILL: the agent cannot act at all, yet its units stop in time."""
    f = fleet.unit_file("slow.service", fleet.sleeper())
    assert fleet.cli("start", "--block-timeout", "60", f).exit_code == 0
    where = running_where(fleet.store, ["slow.service"])
    assert where is not None
    host = fleet.host_of(where["slow.service"])
    assert host.agent is not None
    [pid] = fleet.pids("slow.service")
    sampler = fleet.sampler("slow.service")
    try:
        sampler.mark_fault()
        os.kill(host.agent.pid, signal.SIGSTOP)
        try:
            moved = wait_for(
                lambda: (
                    (w := running_where(fleet.store, ["slow.service"]))
                    and w["slow.service"] != host.machine_id
                    and w
                ),
                (TTL + 3) * 3,
                "the unit running elsewhere",
            )
            assert pid not in fleet.pids("slow.service")  # stopped by its own supervisor
        finally:
            os.kill(host.agent.pid, signal.SIGCONT)
        wait_for(
            lambda: host.machine_id in {m.id for m in fleet.store.machines()}, 30, "agent back"
        )
        time.sleep(TTL)  # the thawed agent's first reconciliations, still sampled
        sampler.mark_gone()
    finally:
        report = sampler.stop()
    report.check(MIN_SAMPLES, ["slow.service"])
    assert len(fleet.pids("slow.service")) == 1
    assert running_where(fleet.store, ["slow.service"]) == moved
