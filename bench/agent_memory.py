"""Agent memory: RSS at start and with 50 peers, and where it goes.

    python -m bench.agent_memory [--peers 49]

Needs root (a network namespace). Prints three tables:

1. a real `vulcano-agent run` on one test host (real etcd): VmRSS, RssAnon, RssFile
   and threads once its overlay is up, then once it has programmed PEERS more subnet
   leases (written straight into etcd: real records the agent watches and plumbs into
   the kernel; nothing sends packets to them); and the floor under any agent: an
   interpreter that only imports the agent's etcd client (`vulcano.etcdhttp`, etcd's
   JSON gateway), connects and does 200 puts and reads;
2. RSS by importer: a fresh interpreter imports what a running agent imports, and each
   import's own growth of VmRSS (its children's taken out) is summed per top-level
   package (the standard library as one row);
3. import time (`python -X importtime`) of the same modules, the slowest packages.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from agent.overlay.component import load_network_config
from bench._procstat import print_table
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.lab.netns import REPO, Underlay
from vulcano.lab.netns import _env as lab_env
from vulcano.lab.poll import wait_for

SETTLE = 1.0  # let the agent's threads reach their steady state before a reading
ROUTE_PROTO = "77"  # agent.overlay.datapath.ROUTE_PROTO

# What `vulcano-agent run` has imported once its overlay is up (pyroute2 is imported by
# the data path when the overlay starts).
RUNNING_AGENT = "import agent.cli, agent.app; from agent.overlay.netlink import iproute; iproute()"

_PROFILE = r"""
import builtins, importlib.util, json, sys
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
def stdlib(top):
    return top in sys.stdlib_module_names or top.startswith("_")
own, pulled = {}, {}
stack = []  # [children's growth, top-level package] of the imports under way
original = builtins.__import__
def importing(name, globals=None, locals=None, fromlist=(), level=0):
    try:
        package = (globals or {}).get("__package__") or ""
        top = importlib.util.resolve_name("." * level + name, package).split(".")[0]
    except (ImportError, ValueError):
        top = name.split(".")[0]
    before = rss()
    stack.append([0, top])
    try:
        return original(name, globals, locals, fromlist, level)
    finally:
        children, _ = stack.pop()
        grown = rss() - before
        mine = grown - children
        key = "(stdlib)" if stdlib(top) else top
        own[key] = own.get(key, 0) + mine
        # the standard library counts for the package that pulled it in
        by = next((t for _, t in reversed(stack) if not stdlib(t)), None) if stdlib(top) else top
        by = by or "(stdlib)"
        pulled[by] = pulled.get(by, 0) + mine
        if stack:
            stack[-1][0] += grown
start = rss()
builtins.__import__ = importing
exec(sys.argv[1])
builtins.__import__ = original
print(json.dumps({"start": start, "end": rss(), "own": own, "pulled": pulled}))
"""


# The floor under any agent: an interpreter with only the agent's etcd client, connected
# and used.
_CLIENT_ONLY = r"""
import sys
from vulcano.etcdhttp import connect
client = connect(sys.argv[1])
for i in range(200):
    client.put(f"/bench-memory/{i}", "x")
    client.get_prefix("/bench-memory/")
client.delete_prefix("/bench-memory/")
for line in open("/proc/self/status"):
    name, _, value = line.partition(":")
    if name in ("VmRSS", "RssAnon", "RssFile", "Threads"):
        print(name, value.split()[0])
"""


def client_only(endpoint: str) -> dict[str, int]:
    """/proc status of an interpreter that only imported, connected and used the client."""
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT_ONLY, endpoint],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=lab_env(),
        timeout=120,
    ).stdout
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}


def _status(pid: int) -> dict[str, int]:
    wanted = ("VmRSS", "RssAnon", "RssFile", "Threads")
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            fields[name] = int(value.split()[0])
    return fields


def running_agent(base: Path, peers: int) -> list[tuple[str, dict[str, int], int]]:
    """Readings of one real agent: after start, and after `peers` more subnet leases."""
    readings = []
    with Underlay(base / "memory") as net:
        (host,) = net.add_hosts(1)
        net.init_network("10.244.0.0/16", 24)
        agent = host.start_agent(ttl=10, subnet_ttl=120)
        host.wait_overlay()

        def routes() -> int:
            out = host.exec(["ip", "-4", "route", "show"]).stdout
            return sum(f"proto {ROUTE_PROTO} " in line + " " for line in out.splitlines())

        time.sleep(SETTLE)
        readings.append(("overlay up, 0 peers", _status(agent.pid), routes()))
        keyspace = Keyspace(DEFAULT_PREFIX)
        client = net.etcd_client()
        try:
            lease = client.lease(120)
            config = load_network_config(client, keyspace)
            assert config is not None
            mine = ipaddress.IPv4Network(host.overlay_state()["subnet"])
            subnets = [
                s
                for s in config.network.subnets(new_prefix=config.subnet_len)
                if s != mine and config.contains_subnet(s)
            ][:peers]
            for i, subnet in enumerate(subnets):
                record = {
                    "machine_id": f"peer{i}",
                    "public_ip": str(ipaddress.IPv4Address("10.199.0.10") + i),
                    "backend_type": "vxlan",
                    "vtep_mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                }
                key = keyspace.subnet(str(subnet))
                client.put(key, json.dumps(record), lease=lease.id)
            wait_for(lambda: routes() == peers, 60, f"{peers} peer routes")
            time.sleep(SETTLE)
            readings.append((f"{peers} peers programmed", _status(agent.pid), routes()))
        finally:
            client.close()
        readings.append(("floor: etcd client only", client_only(net.etcd_local_endpoint), -1))
    return readings


def by_importer(statement: str) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """RSS before and after, and KiB per top-level package of a fresh interpreter: its own
    modules', and with the standard library it pulled in."""
    out = subprocess.run(
        [sys.executable, "-c", _PROFILE, statement],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=lab_env(),
    ).stdout
    data = json.loads(out.splitlines()[-1])
    return int(data["start"]), int(data["end"]), data["own"], data["pulled"]


def import_times(statement: str) -> dict[str, float]:
    """Self import time (ms) per top-level package, from `-X importtime`."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=lab_env(),
    ).stderr
    stdlib = sys.stdlib_module_names
    grouped: dict[str, float] = defaultdict(float)
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        grouped["(stdlib)" if top in stdlib or top.startswith("_") else top] += int(own) / 1000
    return dict(grouped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=49, help="peer subnet leases (49)")
    parser.add_argument("--top", type=int, default=10, help="rows of the importer tables")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp:
        readings = running_agent(Path(tmp), args.peers)
    print("\n(1) a running `vulcano-agent run` (MiB)")
    table = [["when", "VmRSS", "RssAnon", "RssFile", "threads", "peer routes"]]
    for when, status, routes in readings:
        table.append(
            [
                when,
                f"{status['VmRSS'] / 1024:.1f}",
                f"{status['RssAnon'] / 1024:.1f}",
                f"{status['RssFile'] / 1024:.1f}",
                str(status["Threads"]),
                str(routes) if routes >= 0 else "-",
            ]
        )
    print_table(table)

    start, end, own, pulled = by_importer(RUNNING_AGENT)
    print(f"\n(2) RSS by importer: {RUNNING_AGENT}")
    print(f"    bare interpreter {start / 1024:.1f} MiB, after the imports {end / 1024:.1f} MiB")
    table = [["package", "own MiB", "with the stdlib it pulled in"]]
    for top, kib in sorted(pulled.items(), key=lambda kv: -kv[1])[: args.top]:
        table.append([top, f"{own.get(top, 0) / 1024:.1f}", f"{kib / 1024:.1f}"])
    print_table(table)

    times = import_times(RUNNING_AGENT)
    print(f"\n(3) import time, self, per package (total {sum(times.values()):.0f} ms)")
    table = [["package", "ms"]]
    for top, ms in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
        table.append([top, f"{ms:.0f}"])
    print_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
