"""Three whole agents (`vulcano-agent run`) on network-namespace hosts, one real etcd, the
overlay, and the `vulcano` CLI against them: the `fleet` fixture (tests/agent/conftest.py).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from container.cli import main
from vulcano.lab.cluster import kill_by_pid, main_pids, pids_of
from vulcano.lab.invariants import CopySampler, namespace_inode, process_copies
from vulcano.lab.netns import NETNS_DIR, TestHost, Underlay
from vulcano.lab.poll import wait_for
from vulcano.registry import Registry

TTL = 3


@dataclass
class Fleet:
    net: Underlay
    hosts: list[TestHost]
    store: Registry
    marker: str
    dir: Path
    cli: Callable[..., Result]

    def host_of(self, machine_id: str) -> TestHost:
        return next(h for h in self.hosts if h.machine_id == machine_id)

    def unit_file(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text)
        return str(path)

    def sleeper(self, extra: str = "") -> str:
        return f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {self.marker}-%n\n{extra}"

    def pids(self, unit: str) -> list[int]:
        """The main process of each copy of ``unit`` (its children left out)."""
        return main_pids(f"{self.marker}-{unit}")

    def sampler(self, *units: str) -> CopySampler:
        """Samples every copy of ``units`` on every host, each named pid@machine."""
        places = {namespace_inode(NETNS_DIR / h.netns): h.machine_id for h in self.hosts}
        markers = {unit: f"{self.marker}-{unit}" for unit in units}
        return CopySampler(process_copies(markers, places)).start()


@contextlib.contextmanager
def running_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Three hosts (regions eu, us, eu) with agents on TTL seconds' leases."""
    marker = "vu" + secrets.token_hex(4)
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    with Underlay(tmp_path / "net") as net:
        hosts = net.add_hosts(3)
        net.init_network("10.244.0.0/16", 24)
        for h, region in zip(hosts, ["eu", "us", "eu"], strict=True):
            h.start_agent("--metadata", f"region={region}", ttl=TTL)
        for h in hosts:
            h.wait_overlay()
        client = net.etcd_client()
        store = Registry(client)
        runner = CliRunner()

        def cli(*args: str) -> Result:
            return runner.invoke(main, ["--endpoint", net.etcd_local_endpoint, *args])

        fleet = Fleet(net, hosts, store, marker, units_dir, cli)
        try:
            yield fleet
        finally:
            # destroy everything while the agents still run, so they stop and clean up
            specs: list[str] = []
            with contextlib.suppress(Exception):  # teardown goes on whatever failed
                specs = list(store.specs())
                if specs:
                    store.destroy(specs)
                wait_for(lambda: not pids_of(marker), 15, "units stopped after destroy")
            client.close()
            for h in hosts:
                h.kill_agent()
            kill_by_pid(pids_of(marker))
            # the units' sandboxes go with their hosts (Underlay.close), etcd or not
