"""Whole-system fixtures: the Vulcano image, machines booted from Vulcano's user-data.

Images are built once per machine (cached by the digest of their inputs); every machine
a test starts is stopped and removed by the `machines` fixture, also after a failure,
before the underlay's namespaces go.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root
from vulcano.lab import machines as lab_machines
from vulcano.lab import services
from vulcano.lab.images import ImageBuild, build_image
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.machines import Machine
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.podman import Podman

# boot(host, user_data) -> a started Machine in that host's network namespace.
MachineFactory = Callable[[TestHost, str], Machine]


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """podman as the lab runs it; at the session's end, whatever machine is left goes."""
    require_root()
    for tool, package in (("podman", "podman"), ("runc", "runc"), ("mmdebstrap", "mmdebstrap")):
        require(shutil.which(tool) is not None, f"needs {tool} (Debian package {package})")
    tool = Podman()
    yield tool
    lab_machines.remove_run_machines(tool)


@pytest.fixture(scope="session")
def vulcano_image(podman: Podman) -> ImageBuild:
    """The Vulcano image, built from this tree (once: later calls are a lookup)."""
    return build_image(podman=podman)


@pytest.fixture(scope="session")
def machine_image(podman: Podman) -> str:
    """What a Debian 12 cloud image would be, offline; its reference."""
    return lab_machines.build_machine_image(podman).reference


@pytest.fixture
def underlay(tmp_path: Path) -> Iterator[Underlay]:
    """A bridge for test hosts (no etcd of its own: the machines run theirs)."""
    require_root()
    with Underlay(tmp_path / "underlay", with_etcd=False) as net:
        yield net


@pytest.fixture
def installer(
    datastore: services.DatastoreEmulator, underlay: Underlay, tmp_path: Path
) -> Iterator[InstallerServer]:
    """The hosted installer under gunicorn, on loopback and on the underlay's gateway.

    Threaded as app.yaml runs it: every booting etcd holds a discovery long-poll.
    """
    log = tmp_path / "installer.log"
    with installer_server(datastore, log, underlay=underlay, workers=2, threads=8) as server:
        yield server


@pytest.fixture
def machines(podman: Podman, machine_image: str, underlay: Underlay) -> Iterator[MachineFactory]:
    """Boot machines in underlay hosts; each is stopped and removed at teardown."""
    started: list[Machine] = []

    def boot(host: TestHost, user_data: str) -> Machine:
        name = f"{underlay.token}-{host.index}"
        machine = lab_machines.start_machine(
            podman, machine_image, user_data, name=name, netns=host.netns
        )
        started.append(machine)
        return machine

    yield boot
    for machine in started:
        machine.stop_and_remove()
