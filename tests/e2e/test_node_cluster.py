"""Three machines booted from Vulcano's node user-data are one cluster on mutual TLS
(the cluster's CA, each node's certificate in its own user-data): one etcd formed
through discovery, one agent each run by systemd, a full overlay mesh, and units placed
by the engine and run by the machines' own systemd.

The tests share one cluster and run in order: a later test builds on what an earlier one
left (the network config, the web units). From the test process, the cluster is reached
through a loopback forward to node-0's etcd; the real `vulcano` and `vulcano-agent`
CLIs run as subprocesses.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import etcd3
import pytest

from tests.e2e.nodes import (
    ClientFiles,
    member_names,
    new_discovery_url,
    registered,
    wait_booted,
    wait_etcd_healthy,
)
from vulcano import pki
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.lab import machines as lab_machines
from vulcano.lab import probe, services
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.invariants import CopySampler, namespace_inode, process_copies
from vulcano.lab.machines import Machine
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.podman import Podman
from vulcano.lab.poll import wait_for
from vulcano.nodeconfig import AGENT_STATE_DIR, AGENT_UNIT, AGENT_VENV, NodeSpec, render_node
from vulcano.nodetls import NodeTLS

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1500)]

SIZE = 3
WAIT = 90.0
ECHO_PORT = 7000
NETWORK = "10.244.0.0/16"
# Each web copy is a shell whose command line carries this run's word: the sampler finds
# every copy on every machine in this machine's /proc.
MARK = "vweb" + secrets.token_hex(3)
WEB = f"""\
[Unit]
Description=web %i

[Service]
ExecStart=/bin/sh -c 'echo "web %i serving on %H"; sleep infinity; :' {MARK}-%n

[X-Fleet]
Conflicts=web@*
"""
WEBS = [f"web@{i}.service" for i in range(1, SIZE + 1)]
KS = Keyspace(DEFAULT_PREFIX)
# The sampler's samples from a fault until the old copy is gone (a minute or so).
MIN_SAMPLES = 100


@dataclass
class Node:
    name: str
    host: TestHost
    machine: Machine
    user_data: str = ""
    alive: bool = True
    machine_id: str = ""


@dataclass
class Cluster:
    nodes: list[Node]
    endpoint: str  # node-0's etcd, through a loopback forward
    tmp: Path
    installer: InstallerServer
    discovery_url: str
    tls: ClientFiles  # the test's own client certificate of the cluster's CA

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    def by_ip(self, ip: str) -> Node:
        return next(n for n in self.nodes if n.host.ip == ip)

    def etcd(self) -> Any:
        host, port = self.endpoint.removeprefix("https://").split(":")
        return etcd3.client(host=host, port=int(port), timeout=10, **self.tls.etcd3_kwargs())


def run_cli(module: str, cluster: Cluster, *args: str, check: bool = True) -> str:
    """`vulcano` (module container) or `vulcano-agent` (module agent), for real."""
    argv = [sys.executable, "-m", module]
    if module == "container":
        argv += ["--etcd-endpoints", cluster.endpoint, *cluster.tls.flags()]
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=180, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done.stdout


def vulcano(cluster: Cluster, *args: str) -> str:
    return run_cli("container", cluster, *args)


def agent_journal(node: Node) -> str:
    return node.machine.journal(AGENT_UNIT, lines=80)


def _cluster_ca(directory: Path) -> tuple[pki.Issued, ClientFiles]:
    """The cluster's CA (as `cluster create --tls` makes one) and a client certificate
    of it for the test's own CLI calls and etcd client."""
    ca = pki.new_ca("vulcano e2e node cluster")
    client = pki.issue(ca, "e2e-test", "client")
    directory.mkdir(parents=True)
    files = ClientFiles(
        directory / "ca.pem", directory / "client.pem", directory / "client-key.pem"
    )
    pki.write_pem(files.ca, ca.cert_pem, private=False)
    pki.write_pem(files.cert, client.cert_pem, private=False)
    pki.write_pem(files.key, client.key_pem, private=True)
    return ca, files


@pytest.fixture(scope="module")
def cluster(
    podman: Podman,
    machine_image: str,
    datastore_emulator: services.DatastoreEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("node-cluster")
    datastore_emulator.reset()
    nodes: list[Node] = []
    with (
        Underlay(tmp / "underlay", with_etcd=False) as underlay,
        installer_server(
            datastore_emulator, tmp / "installer.log", underlay=underlay, workers=2, threads=8
        ) as installer,
    ):
        try:
            url = new_discovery_url(installer, SIZE)
            ca, tls = _cluster_ca(tmp / "tls")
            crl = pki.new_crl(ca, []).decode()
            for i, host in enumerate(underlay.add_hosts(SIZE)):
                name = f"node-{i}"
                cert = pki.issue(
                    ca, name, "peer", ips=[host.ip, "127.0.0.1"], dns=[name, "localhost"]
                )
                node_tls = NodeTLS(
                    ca.cert_pem.decode(), cert.cert_pem.decode(), cert.key_pem.decode(), crl
                )
                spec = NodeSpec(
                    name=name,
                    ip=host.ip,
                    discovery_url=url,
                    metadata=(("n", str(i)),),
                    tls=node_tls,
                )
                text = render_node(spec).text
                machine = lab_machines.start_machine(
                    podman, machine_image, text, name=f"{underlay.token}-c{i}", netns=host.netns
                )
                nodes.append(Node(spec.name, host, machine, text))
            for node in nodes:
                wait_booted(node.machine)
            for node in nodes:
                wait_etcd_healthy(node.machine)
            with nodes[0].host.forward(2379) as forward:
                endpoint = f"https://127.0.0.1:{forward.port}"
                yield Cluster(nodes, endpoint, tmp, installer, url, tls)
        finally:
            for node in nodes:
                node.machine.stop_and_remove()


def machines_listed(cluster: Cluster) -> dict[str, str]:
    """public IP -> machine id, as `vulcano list-machines` says."""
    rows = json.loads(vulcano(cluster, "list-machines", "--json", "--full"))
    return {row["ip"]: row["machine"] for row in rows}


def test_three_nodes_form_one_etcd_through_discovery_and_each_runs_its_agent_under_systemd(
    cluster: Cluster,
) -> None:
    names = [n.name for n in cluster.nodes]
    for node in cluster.nodes:  # each booted from exactly its document
        assert node.machine.exec(["hostname"]).stdout.strip() == node.name
        assert node.machine.read_file("/var/lib/cloud/instance/user-data.txt") == node.user_data
        assert node.machine.systemctl("is-active", "etcd.service").stdout.strip() == "active"
    for node in cluster.nodes:  # every member sees the same three
        assert member_names(node.host, cluster.tls) == names
        assert node.machine.systemctl("is-active", AGENT_UNIT).stdout.strip() == "active"
    # the members require a certificate of the cluster's CA: the CLI with only the CA
    # bundle (no client certificate) is refused, saying so
    argv = [sys.executable, "-m", "container", "--etcd-endpoints", cluster.endpoint]
    argv += ["--cacert", str(cluster.tls.ca), "list-machines"]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
    # they found each other through the hosted installer's discovery service
    assert registered(cluster.installer, cluster.discovery_url) == sorted(
        f"{n.name}=https://{n.host.ip}:2380" for n in cluster.nodes
    )
    try:
        wait_for(lambda: len(machines_listed(cluster)) == SIZE, WAIT, "three machines", 0.5)
    except TimeoutError as exc:
        logs = "\n".join(agent_journal(n) for n in cluster.nodes)
        raise AssertionError(f"{exc}\n{logs}") from None
    listed = machines_listed(cluster)
    for node in cluster.nodes:
        node.machine_id = listed[node.host.ip]
        assert node.machine_id == node.machine.read_file("/etc/machine-id").strip()


def test_the_overlay_meshes_sandboxes_on_every_pair_with_tcp_echo(cluster: Cluster) -> None:
    run_cli(
        "agent",
        cluster,
        "network",
        "init",
        "--etcd-endpoints",
        cluster.endpoint,
        *cluster.tls.flags(),
        "--network",
        NETWORK,
    )
    subnet_env = f"{AGENT_STATE_DIR}/subnet.env"
    for node in cluster.nodes:
        wait_for(
            lambda n=node: "FLANNEL_SUBNET" in n.machine.read_file(subnet_env),
            WAIT,
            f"{node.name}'s subnet",
            0.5,
        )
    source = Path(probe.__file__).read_text()
    addresses = {}
    for node in cluster.nodes:
        m = node.machine
        m.exec(["sh", "-c", "cat > /usr/local/bin/vulcano-probe.py"], input=source)
        sandbox = f"sb-{node.name}"
        created = m.exec(
            [
                f"{AGENT_VENV}/bin/vulcano-agent",
                "sandbox",
                "create",
                sandbox,
                "--state-dir",
                AGENT_STATE_DIR,
            ]
        )
        addresses[node.name] = created.stdout.strip()
        m.exec(
            [
                "systemd-run",
                f"--unit=echo-{sandbox}",
                f"--property=NetworkNamespacePath=/run/netns/{sandbox}",
                "/usr/bin/python3",
                "/usr/local/bin/vulcano-probe.py",
                "serve",
                str(ECHO_PORT),
            ]
        )
    assert len(set(addresses.values())) == SIZE
    for node in cluster.nodes:
        others = [ip for name, ip in addresses.items() if name != node.name]

        def answered(n: Node = node, targets: list[str] = others) -> dict[str, Any] | None:
            out = n.machine.exec(
                [
                    "ip",
                    "netns",
                    "exec",
                    f"sb-{n.name}",
                    "python3",
                    "/usr/local/bin/vulcano-probe.py",
                    "check",
                    str(ECHO_PORT),
                    *targets,
                ]
            )
            found: dict[str, Any] = json.loads(out.stdout)
            return found if all(r["tcp"] for r in found.values()) else None

        result = wait_for(answered, WAIT, f"TCP echo from {node.name}'s sandbox", 1.0)
        assert sorted(result) == sorted(others)


# --- units --------------------------------------------------------------------------


def active_webs(node: Node) -> set[str]:
    """The web units systemd in this machine says are active."""
    done = node.machine.exec(["systemctl", "is-active", *WEBS], check=False)
    return {unit for unit, word in zip(WEBS, done.stdout.split(), strict=False) if word == "active"}


def machine_pid_namespace(node: Node) -> int:
    """The inode of the machine's pid namespace (its systemd's, seen from outside)."""
    pid = node.machine.podman.run(
        "container", "inspect", "--format", "{{.State.Pid}}", node.machine.container
    ).stdout.strip()
    return namespace_inode(f"/proc/{pid}/ns/pid")


@pytest.fixture(scope="module")
def copies(cluster: Cluster) -> Iterator[CopySampler]:
    """Every copy of every web unit on every machine, sampled every few ms all along."""
    places = {machine_pid_namespace(n): n.name for n in cluster.nodes}
    markers = {unit: f"{MARK}-{unit}" for unit in WEBS}
    sampler = CopySampler(process_copies(markers, places, kind="pid")).start()
    yield sampler
    sampler.stop().check(MIN_SAMPLES)


def placements(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """unit -> (node name or "-", ACTIVE), as `vulcano list-units` says."""
    rows = json.loads(vulcano(cluster, "list-units", "--json", "--full"))
    out = {}
    for row in rows:
        machine = row["machine"]
        node = cluster.by_ip(machine.split("/")[1]).name if "/" in machine else "-"
        out[row["unit"]] = (node, row["active"])
    return out


def systemd_placements(cluster: Cluster) -> dict[str, tuple[str, str]]:
    out = {}
    for node in cluster.live():
        for unit in active_webs(node):
            out[unit] = (node.name, "active")
    return out


def wait_agreement(cluster: Cluster, expected_units: list[str]) -> dict[str, tuple[str, str]]:
    """Until list-units and every machine's systemd agree, each unit active somewhere."""

    def agreed() -> dict[str, tuple[str, str]] | None:
        listed = {u: p for u, p in placements(cluster).items() if u in expected_units}
        ok = sorted(listed) == sorted(expected_units) and listed == systemd_placements(cluster)
        return listed if ok else None

    try:
        return wait_for(agreed, WAIT, "list-units and systemd to agree", 1.0)
    except TimeoutError as exc:
        raise AssertionError(
            f"{exc}\nlist-units: {placements(cluster)}\nsystemd: {systemd_placements(cluster)}"
        ) from None


def test_web_units_run_one_per_machine_under_systemd_as_list_units_says(
    cluster: Cluster, copies: CopySampler
) -> None:
    unit_file = cluster.tmp / "web@.service"
    unit_file.write_text(WEB)
    vulcano(cluster, "submit", str(unit_file))
    vulcano(cluster, "start", *WEBS)
    placed = wait_agreement(cluster, WEBS)
    assert sorted(node for node, _ in placed.values()) == [n.name for n in cluster.nodes]
    assert copies.report.overlaps == []
    assert all(copies.report.seen.get(unit) for unit in WEBS)  # each seen by its process


def test_vulcano_journal_shows_what_systemd_s_journal_holds(cluster: Cluster) -> None:
    node = next(n for n in cluster.nodes if n.name == placements(cluster)[WEBS[0]][0])
    lines = node.machine.exec(
        ["journalctl", "--unit", WEBS[0], "--output", "cat", "--no-pager", "--lines", "10"]
    ).stdout.splitlines()
    assert f"web 1 serving on {node.name}" in lines

    def shown() -> bool:
        out = vulcano(cluster, "journal", "--lines", "10", WEBS[0]).splitlines()
        return out == lines

    wait_for(shown, WAIT, "vulcano journal", 1.0)


def journal_monotonic(node: Node, unit: str, prefix: str) -> float:
    """CLOCK_MONOTONIC seconds (shared with this process) of the unit's last journal
    entry starting with ``prefix``."""
    out = node.machine.exec(["journalctl", "--unit", unit, "--output", "json", "--no-pager"]).stdout
    stamps = [
        int(entry["__MONOTONIC_TIMESTAMP"]) / 1e6
        for entry in map(json.loads, out.splitlines())
        if str(entry.get("MESSAGE", "")).startswith(prefix)
    ]
    assert stamps, f"no {prefix!r} entry for {unit} in {node.name}"
    return stamps[-1]


def test_a_machine_that_loses_etcd_stops_its_unit_before_its_lease_lapses(
    cluster: Cluster, copies: CopySampler
) -> None:
    node = cluster.nodes[1]  # not node-0: the test reaches etcd through node-0
    unit = next(u for u, (n, _) in placements(cluster).items() if n == node.name)
    client = cluster.etcd()
    copies.mark_fault()
    try:
        node.machine.systemctl("stop", "etcd.service", check=True)
        gone = wait_for(
            lambda: time.monotonic() if client.get(KS.machine(node.machine_id))[0] is None else 0,
            WAIT,
            "the machine record to expire",
            0.05,
        )
        # Looked at before etcd is back: then the engine may place the unit here again.
        assert unit not in active_webs(node)
        stopped = journal_monotonic(node, unit, "Stopped")
    finally:
        node.machine.systemctl("start", "etcd.service")
        client.close()
    assert stopped < gone, (stopped, gone, agent_journal(node))
    # Back on etcd, the agent joins again and the unit, with nowhere else to go, returns.
    wait_etcd_healthy(node.machine)
    placed = wait_agreement(cluster, WEBS)
    assert placed[unit][0] == node.name
    copies.mark_gone()
    copies.report.check(MIN_SAMPLES, [unit])


def test_a_killed_machine_has_its_unit_moved_and_no_unit_ever_runs_twice(
    cluster: Cluster, copies: CopySampler
) -> None:
    placed = placements(cluster)
    victim = cluster.nodes[2]
    moved = next(u for u, (n, _) in placed.items() if n == victim.name)
    freed = next(u for u, (n, _) in placed.items() if n == cluster.nodes[1].name)
    vulcano(cluster, "destroy", freed)  # leaves node-1 free: Conflicts=web@* everywhere else
    wait_for(lambda: freed not in active_webs(cluster.nodes[1]), WAIT, f"{freed} gone")
    copies.mark_fault()
    victim.machine.kill()
    killed_at = time.monotonic()
    victim.alive = False
    expected = [u for u in WEBS if u != freed]
    after = wait_agreement(cluster, expected)
    assert after[moved][0] == cluster.nodes[1].name
    assert journal_monotonic(cluster.nodes[1], moved, "Started") > killed_at
    copies.mark_gone()  # the victim is powered off (podman waited for it): its copy is gone
    copies.report.check(MIN_SAMPLES, [moved])
    where = {c.rsplit("@", 1)[1] for c in copies.report.seen[moved]}
    assert {victim.name, cluster.nodes[1].name} <= where  # seen before and after the move
