"""Helpers for tests of machines booted from Vulcano's node user-data: waiting for
cloud-init and etcd, and asking etcd and the installer's discovery what formed.

Each machine is a privileged podman container with systemd as PID 1 and cloud-init,
in a network namespace on the test's underlay; the installer listens on the underlay's
bridge address, so every packet stays inside what the test made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import etcd3
import requests

from vulcano import nodetls
from vulcano.lab.errors import CloudInitFailed
from vulcano.lab.installer import InstallerServer
from vulcano.lab.machines import Machine
from vulcano.lab.netns import TestHost
from vulcano.lab.poll import wait_for

# etcd answers /health within seconds of cloud-init's runcmd restarting it.
ETCD_HEALTHY_TIMEOUT = 120.0


def new_discovery_url(installer: InstallerServer, size: int) -> str:
    url = installer.new_discovery_url(size)
    assert installer.underlay_url is not None and url.startswith(installer.underlay_url), url
    return url


def etcd_health(machine: Machine) -> bool:
    """etcd's /health on the machine's loopback: over mutual TLS with the node's own
    files when its user-data wrote them (a --tls cluster's node), else plain."""
    tls = nodetls.TLS_DIR
    script = (
        f"if [ -f {tls}/node.pem ]; then exec curl -fsS --max-time 3 --cacert {tls}/ca.pem "
        f"--cert {tls}/node.pem --key {tls}/node-key.pem https://127.0.0.1:2379/health; "
        "else exec curl -fsS --max-time 3 http://127.0.0.1:2379/health; fi"
    )
    done = machine.exec(["sh", "-c", script])
    return bool(json.loads(done.stdout).get("health") == "true")


def wait_booted(machine: Machine) -> None:
    """cloud-init done; when it is not, the failure shows etcd's journal too."""
    try:
        machine.wait_cloud_init()
    except CloudInitFailed as exc:
        raise AssertionError(f"{exc}\n--- etcd ---\n{machine.journal('etcd.service')}") from None


def wait_etcd_healthy(machine: Machine) -> None:
    try:
        wait_for(lambda: etcd_health(machine), ETCD_HEALTHY_TIMEOUT, f"etcd on {machine}", 0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{machine.journal('etcd.service')}") from None


@dataclass(frozen=True)
class ClientFiles:
    """A client's TLS files for a cluster whose etcd requires certificates."""

    ca: Path
    cert: Path
    key: Path

    def flags(self) -> list[str]:
        return ["--cacert", str(self.ca), "--cert", str(self.cert), "--key", str(self.key)]

    def etcd3_kwargs(self) -> dict[str, str]:
        return {"ca_cert": str(self.ca), "cert_cert": str(self.cert), "cert_key": str(self.key)}


def member_names(host: TestHost, tls: ClientFiles | None = None) -> list[str]:
    """The members a node's etcd knows, asked on the node's underlay address (over
    mutual TLS with ``tls``: the members' certificates name 127.0.0.1 too)."""
    with host.forward(2379) as forward:
        extra = tls.etcd3_kwargs() if tls is not None else {}
        client = etcd3.client(host="127.0.0.1", port=forward.port, timeout=10, **extra)
        try:
            return sorted(member.name for member in client.members)
        finally:
            client.close()


def registered(installer: InstallerServer, discovery_url: str) -> list[str]:
    """The `name=peer-url` values a discovery token holds (etcd's v2 protocol)."""
    assert installer.underlay_url is not None
    on_loopback = installer.url + discovery_url.removeprefix(installer.underlay_url)
    answer = requests.get(on_loopback, timeout=10)
    assert answer.status_code == 200, answer.text
    nodes = answer.json()["node"].get("nodes", [])
    return sorted(n["value"] for n in nodes if not n["key"].endswith("/_config"))
