"""Unit failover after `kill -9` of an agent: `python -m bench.failover` (root).

Three network-namespace hosts run real `vulcano-agent run` processes (machine TTL 3 s)
against one etcd; 30 units are spread over them. The agent holding the most units is
SIGKILLed; we time until every one of its units reports active on another machine, and
check that no unit ever ran twice (its old process was gone before the new one started).
The agent is then started again and the next round kills another. fleet's fault here
was the old copy running on alongside the new one.

`python -m bench.failover --machines 1000 --units 100000` (no root) is the same question
at scale: real agent code (MachineUnits on machine leases, no-op runner) for every
machine, in a few processes (bench/_farm.py), the victim alone in a process of its own.
Once every unit runs, that process is SIGKILLed (its lease is no longer kept); we time
until every one of its units reports active elsewhere, and prove that none ran twice:
each moved unit was started exactly once afterwards, after the kill, and no unit was
ever reported active on two machines at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._farm import ActiveUnits, Farm, favour, machine_id
from vulcano import etcd as vulcano_etcd
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import kill_by_pid, pids_of
from vulcano.lab.netns import Underlay
from vulcano.lab.poll import wait_for
from vulcano.lab.services import etcd_server
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry
from vulcano.watch import PrefixWatch, current_revision

TTL = 3
UNITS = 30
ROUNDS = 3
TIMEOUT = 60.0
BENCH_TMP = os.environ.get("VULCANO_BENCH_TMP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, help="the farm mode: this many machines")
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--procs", type=int, default=4, help="agent processes (farm mode)")
    parser.add_argument("--ttl", type=int, default=10, help="machine lease TTL (farm mode)")
    parser.add_argument(
        "--worst",
        action="store_true",
        help="farm mode: kill just after the victim's lease was refreshed (expiry a TTL later)",
    )
    args = parser.parse_args()
    if args.machines:
        farm_failover(args.machines, args.units, args.procs, args.ttl, args.worst)
    else:
        netns_failover()


def netns_failover() -> None:
    marker = f"vbench{int(time.time())}"
    results: list[tuple[int, float, int]] = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-failover-", dir=BENCH_TMP) as tmp,
        Underlay(Path(tmp)) as net,
    ):
        hosts = net.add_hosts(3)
        net.init_network("10.244.0.0/16", 24)
        for h in hosts:
            h.start_agent(ttl=TTL)
        for h in hosts:
            h.wait_overlay()
        client = net.etcd_client()
        store = Registry(client)
        names = [f"f{i:02d}.service" for i in range(UNITS)]
        text = f"[Service]\nExecStart=/bin/sh -c 'sleep 100000; :' {marker}-%n\n"
        try:
            store.submit([UnitSource(n, text) for n in names])
            store.set_desired(names, DesiredState.LAUNCHED)
            _wait_all_active(store, names)
            for _ in range(ROUNDS):
                where = {n: s.machine_id for n, s in store.states().items()}
                counts = {
                    h.machine_id: sum(1 for m in where.values() if m == h.machine_id) for h in hosts
                }
                victim = max(hosts, key=lambda h: counts[h.machine_id])
                moving = [n for n, m in where.items() if m == victim.machine_id]
                old = {n: set(pids_of(f"{marker}-{n}")) for n in moving}
                overlaps = 0
                victim.kill_agent()
                killed = time.monotonic()
                print(f"# killed {victim.machine_id} at {time.strftime('%H:%M:%S')}", flush=True)
                while True:
                    st = store.states()
                    done = all(
                        st.get(n) is not None
                        and st[n].active == "active"
                        and st[n].machine_id not in (None, victim.machine_id)
                        for n in moving
                    )
                    for n in moving:
                        now = set(pids_of(f"{marker}-{n}"))
                        if (now - old[n]) and (now & old[n]):
                            overlaps += 1  # a new copy while the old one still ran
                    if done:
                        break
                    if time.monotonic() - killed > TIMEOUT:
                        stuck = {n: st.get(n) for n in moving if n in st}
                        for h in hosts:
                            if h.agent is not None:
                                print(h.agent.log()[-3000:])
                        raise RuntimeError(f"round {len(results) + 1}: not failed over: {stuck}")
                    time.sleep(0.05)
                results.append((len(moving), time.monotonic() - killed, overlaps))
                victim.start_agent(ttl=TTL)
                victim.wait_overlay()
                time.sleep(TTL)
        finally:
            if os.environ.get("VULCANO_BENCH_LOGS"):
                for h in hosts:
                    if h.agent is not None:
                        print(f"== {h.machine_id}\n{h.agent.log()}")
            store.destroy(list(store.specs()))
            time.sleep(2)
            client.close()
            for h in hosts:
                h.kill_agent()
            kill_by_pid(pids_of(marker))
    print(f"\nunit failover after kill -9 of an agent: 3 hosts, {UNITS} units, TTL {TTL}s")
    print(f"{'round':>5} {'units moved':>12} {'seconds':>8} {'ran twice':>10}")
    for i, (moved, secs, overlaps) in enumerate(results, 1):
        print(f"{i:>5} {moved:>12} {secs:>8.1f} {overlaps:>10}")
    print(f"median {statistics.median(r[1] for r in results):.1f}s (goal: within TTL + 3 s)")


def _await_refresh(client: Any, lease_id: int, ttl: int) -> None:
    """Return as soon as etcd took a keep-alive of the lease (its time to live went up)."""
    last = ttl + 1
    deadline = time.monotonic() + 2 * ttl
    while time.monotonic() < deadline:
        left = int(client.get_lease_info(lease_id).TTL)
        if left > last:
            return
        last = left
        time.sleep(0.01)
    raise RuntimeError(f"lease {lease_id} was not refreshed in {2 * ttl} s")


def farm_failover(machines: int, n_units: int, procs: int, ttl: int, worst: bool) -> None:
    victim = machines // 2
    with tempfile.TemporaryDirectory(prefix="vulcano-failover-", dir=BENCH_TMP) as tmp:
        base = Path(tmp)
        (base / "etcd").mkdir()
        with etcd_server(base / "etcd") as member:
            assert member.proc is not None
            favour(member.proc.pid)
            client = vulcano_etcd.connect(member.endpoint, timeout=60)
            farm = Farm(member.endpoint, base / "farm", machines, procs, ttl).start(alone=victim)
            active = ActiveUnits(client)
            try:
                store = Registry(client)
                names = [f"u{i:06d}.service" for i in range(n_units)]
                text = "[Service]\nExecStart=/bin/true %n\n"
                store.submit([UnitSource(n, text) for n in names])
                store.set_desired(names, DesiredState.LAUNCHED)
                launched = time.monotonic()
                while active.count() < n_units:
                    if time.monotonic() - launched > 600:
                        raise RuntimeError(f"only {active.count()}/{n_units} launched")
                    time.sleep(0.2)
                time.sleep(1)  # let the last reports settle
                gone = machine_id(victim)
                moving = [n for n in names if active.where(n) == {gone}]
                load = os.getloadavg()[0]
                record = PrefixWatch(
                    client, [Keyspace().machine(gone)], current_revision(client) + 1
                )
                expired = float("nan")  # seconds from the kill until etcd removed its record
                if worst:  # the kill comes just after a refresh: the lease lives a whole TTL
                    _, meta = client.get(Keyspace().machine(gone))
                    _await_refresh(client, meta.lease_id, ttl)
                killed_at = time.time()
                killed = time.monotonic()
                os.killpg(farm.worker_of(victim).pid, signal.SIGKILL)
                while not all(active.where(n) and gone not in active.where(n) for n in moving):
                    if time.monotonic() - killed > TIMEOUT:
                        raise RuntimeError("the victim's units did not all move")
                    while expired != expired and not record.events.empty():
                        item = record.events.get()
                        if not isinstance(item, list) or any(c.value is None for c in item):
                            expired = time.monotonic() - killed
                    time.sleep(0.02)
                seconds = time.monotonic() - killed
                twice_active = len(active.twice)
                record.cancel()
            finally:
                active.close()
                results = farm.stop()
                client.close()
    starts = results["starts"]
    moved_twice = sum(1 for n in moving if len(starts.get(n, [])) != 1 or starts[n][0] < killed_at)
    others_twice = sum(1 for n, t in starts.items() if n not in moving and len(t) != 1)
    print(f"\nunit failover after SIGKILL of one machine's agent process: {machines} machines")
    print(f"in {procs}+1 agent processes, {n_units} units, machine TTL {ttl}s, no-op runner")
    if worst:
        print("killed just after etcd took a keep-alive of its lease (the worst case)")
    engine = results["engine"]
    print(
        f"{'units moved':>11} {'seconds':>8} {'goal (TTL+3)':>12} {'record gone':>11} "
        f"{'moved ran twice':>15} {'others ran twice':>16} {'active on 2':>11} "
        f"{'plans':>5} {'replans':>7} {'load1':>5}"
    )
    print(
        f"{len(moving):>11} {seconds:>8.1f} {ttl + 3:>12} {expired:>11.1f} {moved_twice:>15} "
        f"{others_twice:>16} {twice_active:>11} {engine.get('plans', 0):>5} "
        f"{engine.get('replans', 0):>7} {load:>5.2f}"
    )
    print("# record gone: seconds from the kill until etcd expired the machine's lease")


def _wait_all_active(store: Registry, names: list[str]) -> None:
    def all_active() -> bool:
        st = store.states()
        return all(n in st and st[n].active == "active" for n in names)

    wait_for(all_active, TIMEOUT, "every unit active", interval=0.2)


if __name__ == "__main__":
    main()
