"""The Vulcano image and test machines: build times, sizes, and how fast a node boots.

Builds the Vulcano image twice (cold: the image itself rebuilt, its base and wheelhouse
cached; then cached: a lookup), reads both images' sizes, then boots single-node
machines from Vulcano's node user-data (cloud-init flavour) in a network namespace, with
the hosted installer's discovery service on the underlay's bridge address, and times
machine start → cloud-init done, → etcd healthy, → its agent (the user-data's systemd
unit) registered, and → a first unit (started with the `vulcano` CLI) active under the
machine's systemd; then boots provisioning machines from the installer's stored
provisioning user-data and times machine start → the provisioning container's /healthz
answering (Docker in the machine loads and starts the image). Run with
`python -m bench.machines` (or `nox -s bench -- machines`); root, podman, runc and
mmdebstrap needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from vulcano.lab import images, machines, provisioning, rootfs, services
from vulcano.lab.installer import installer_server
from vulcano.lab.netns import Underlay
from vulcano.lab.podman import Podman, available
from vulcano.lab.poll import wait_for
from vulcano.nodeconfig import NodeSpec, render_node

ETCD_TIMEOUT = 120.0
PANEL_TIMEOUT = 300.0
PANEL_PORT = 8080
AGENT_TIMEOUT = 120.0
UNIT = """\
[Service]
ExecStart=/bin/sleep infinity
"""


@dataclass(frozen=True)
class Boot:
    """Seconds from machine start to each milestone."""

    cloud_init: float
    etcd: float
    agent: float
    unit: float


def _vulcano(endpoint: str, *args: str) -> str:
    argv = [sys.executable, "-m", "container", "--etcd-endpoints", endpoint, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def _registered(endpoint: str) -> bool:
    return bool(json.loads(_vulcano(endpoint, "list-machines", "--json")))


def _etcd_healthy(machine: machines.Machine) -> bool:
    done = machine.exec(
        ["curl", "-fsS", "--max-time", "3", "http://127.0.0.1:2379/health"], check=False
    )
    return done.returncode == 0 and json.loads(done.stdout).get("health") == "true"


def boot_round(
    podman: Podman, image: str, base: Path, emulator: services.DatastoreEmulator
) -> Boot:
    """One node booted from its user-data; seconds to each milestone."""
    with Underlay(base, with_etcd=False) as net:
        host = net.add_host()
        with installer_server(
            emulator, base / "installer.log", underlay=net, workers=2, threads=8
        ) as installer:
            url = installer.new_discovery_url(1)
            spec = NodeSpec(name="node-0", ip=host.ip, discovery_url=url)
            started = time.monotonic()
            with machines.machine(
                podman, image, render_node(spec).text, name=f"bench-{net.token}", netns=host.netns
            ) as machine:
                machine.wait_cloud_init()
                cloud_init = time.monotonic() - started
                wait_for(lambda: _etcd_healthy(machine), ETCD_TIMEOUT, "etcd", 0.1)
                etcd = time.monotonic() - started
                with host.forward(2379) as forward:
                    endpoint = f"http://127.0.0.1:{forward.port}"
                    wait_for(lambda: _registered(endpoint), AGENT_TIMEOUT, "the agent", 0.1)
                    agent = time.monotonic() - started
                    # The agent starts its units once its overlay has a network config.
                    init = [sys.executable, "-m", "agent", "network", "init"]
                    init += ["--etcd-endpoints", endpoint, "--network", "10.244.0.0/16"]
                    subprocess.run(init, capture_output=True, timeout=60, check=True)
                    unit_file = base / "bench.service"
                    unit_file.write_text(UNIT)
                    _vulcano(endpoint, "start", "--no-block", str(unit_file))
                    wait_for(
                        lambda: (
                            machine.systemctl("is-active", "bench.service").stdout.strip()
                            == "active"
                        ),
                        AGENT_TIMEOUT,
                        "the first unit",
                        0.1,
                    )
                    unit = time.monotonic() - started
    return Boot(cloud_init, etcd, agent, unit)


def provisioning_round(
    podman: Podman,
    image: str,
    archive: Path,
    base: Path,
    emulator: services.DatastoreEmulator,
) -> float:
    """One provisioning machine booted from the installer's document: seconds to /healthz."""
    with Underlay(base, with_etcd=False) as net:
        host = net.add_host()
        with installer_server(emulator, base / "installer.log", underlay=net) as installer:
            document = provisioning.create_install(installer, cluster_name="bench", size=3)
        started = time.monotonic()
        machine = machines.start_machine(
            podman,
            image,
            document.text,
            name=f"bench-p{net.token}",
            netns=host.netns,
            read_only=[(archive, provisioning.IMAGE_ARCHIVE_DIR)],
            cgroupns="private",
        )
        with machine, host.forward(PANEL_PORT) as forward:
            url = f"http://127.0.0.1:{forward.port}/healthz"
            wait_for(
                lambda: requests.get(url, timeout=2).status_code == 200,
                PANEL_TIMEOUT,
                "the provisioning panel",
                0.2,
            )
            return time.monotonic() - started


def _spread(values: list[float]) -> str:
    if not values:
        return "not run"
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return (
        f"median {statistics.median(values):.1f} s "
        f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"
    )


def _built(what: str, built: rootfs.Built) -> str:
    return what + (", cached" if built.cached else ", cold")


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.machines", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="machines to boot, one by one")
    parser.add_argument(
        "--provisioning-rounds", type=int, default=2, help="provisioning machines to boot"
    )
    parser.add_argument(
        "--cold-images",
        action="store_true",
        help="also rebuild the local base and the machine image (mmdebstrap; slow)",
    )
    args = parser.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    podman = available()

    log("building the local base image")
    base = rootfs.build(images.LOCAL_BASE, podman, force=args.cold_images)
    log("building the Vulcano image (cold: the image rebuilt, base and wheels cached)")
    cold = images.build_image(podman=podman, force=True)
    cached = images.build_image(podman=podman)
    log("building the machine image")
    machine_image = machines.build_machine_image(podman, force=args.cold_images)
    rows = [
        (_built("local base image (mmdebstrap + import)", base), f"{base.seconds:.1f} s"),
        ("Vulcano image build, cold (base, wheels cached)", f"{cold.seconds:.1f} s"),
        ("Vulcano image build, cached", f"{cached.seconds:.2f} s"),
        ("Vulcano image size", _mb(podman.image_size(cold.reference))),
        (
            _built("machine image (rootfs + agent layer)", machine_image),
            f"{machine_image.seconds:.1f} s",
        ),
        ("machine image size", _mb(podman.image_size(machine_image.reference))),
    ]
    boots: list[Boot] = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-machines-") as tmp,
        services.datastore_emulator() as emulator,
    ):
        for i in range(args.rounds):
            log(f"booting machine {i + 1}/{args.rounds}")
            emulator.reset()
            boots.append(boot_round(podman, machine_image.reference, Path(tmp) / str(i), emulator))
        log("building the provisioning machine image and the Vulcano image's archive")
        provisioning_image = provisioning.build_provisioning_machine_image(podman)
        archive = provisioning.image_archive(podman, cached)
        to_panel: list[float] = []
        for i in range(args.provisioning_rounds):
            log(f"booting provisioning machine {i + 1}/{args.provisioning_rounds}")
            emulator.reset()
            to_panel.append(
                provisioning_round(
                    podman,
                    provisioning_image.reference,
                    archive,
                    Path(tmp) / f"p{i}",
                    emulator,
                )
            )
    rows += [
        ("machine start → cloud-init done", _spread([b.cloud_init for b in boots])),
        ("machine start → etcd healthy", _spread([b.etcd for b in boots])),
        ("machine start → agent registered", _spread([b.agent for b in boots])),
        ("machine start → first unit active (systemd)", _spread([b.unit for b in boots])),
        (
            _built("provisioning machine image", provisioning_image),
            f"{provisioning_image.seconds:.1f} s",
        ),
        ("provisioning machine start → container /healthz answers", _spread(to_panel)),
    ]
    width = max(len(what) for what, _ in rows)
    print()
    print(f"{'WHAT'.ljust(width)}  VALUE")
    for what, value in rows:
        print(f"{what.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
