"""A machine booted from the installer's own provisioning user-data (cloud-init flavour)
runs the provisioning container with the exact systemd unit the installer generated.

The document is the one the hosted installer stored for an install made through its
form and serves from the install's permalink. The machine (vulcano/lab/provisioning.py)
is Debian 12 with cloud-init and Docker, in a network namespace on the test's underlay;
its Docker runs the real Vulcano image this tree builds, loaded from a `podman save`
archive as a pull would leave it. The panel inside answers on the machine's address,
reached from the test only through a loopback forward into that namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from vulcano import image
from vulcano.lab import provisioning
from vulcano.lab.errors import CloudInitFailed
from vulcano.lab.images import ImageBuild
from vulcano.lab.installer import InstallerServer
from vulcano.lab.machines import Machine, start_machine
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.podman import Podman
from vulcano.lab.poll import wait_for
from vulcano.lab.stack import Provisioner

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]

PANEL_PORT = 8080  # `vulcano serve`'s default: the unit passes no port
# From cloud-init done to the panel answering: docker loads and starts a 350 MB image
# on the vfs driver, on two shared cores.
PANEL_UP_TIMEOUT = 300.0
CLUSTER = "prod"
SIZE = 3


@dataclass
class ProvisioningMachine:
    machine: Machine
    host: TestHost
    document: provisioning.InstallDocument

    @property
    def unit_text(self) -> str:
        """The unit as the document carries it (write_files of the cloud-init flavour)."""
        data = yaml.safe_load(self.document.text)
        (unit,) = [f for f in data["write_files"] if f["path"] == provisioning.UNIT_PATH]
        return str(unit["content"])

    def health(self, port: int) -> requests.Response:
        # over HTTPS, verified against the certificate the panel made on its volume
        return Provisioner(self.machine).get_panel(port)

    def wait_booted(self) -> None:
        try:
            self.machine.wait_cloud_init()
        except CloudInitFailed as exc:
            raise AssertionError(f"{exc}\n{provisioning.diagnostics(self.machine)}") from None

    def wait_panel(self, port: int) -> requests.Response:
        def answered() -> requests.Response | None:
            answer = self.health(port)
            return answer if answer.status_code == 200 else None

        try:
            return wait_for(answered, PANEL_UP_TIMEOUT, "the provisioning panel", 1.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{provisioning.diagnostics(self.machine)}") from None


@pytest.fixture(scope="module")
def provisioning_machine_image(podman: Podman) -> str:
    return provisioning.build_provisioning_machine_image(podman).reference


@pytest.fixture(scope="module")
def image_archive(podman: Podman, vulcano_image: ImageBuild) -> Path:
    return provisioning.image_archive(podman, vulcano_image)


@pytest.fixture
def booted(
    podman: Podman,
    provisioning_machine_image: str,
    image_archive: Path,
    underlay: Underlay,
    installer: InstallerServer,
) -> Iterator[ProvisioningMachine]:
    """A machine booting the installer's document for a new install; removed after."""
    document = provisioning.create_install(installer, cluster_name=CLUSTER, size=SIZE)
    host = underlay.add_host()
    machine = start_machine(
        podman,
        provisioning_machine_image,
        document.text,
        name=f"{underlay.token}-p{host.index}",
        netns=host.netns,
        read_only=[(image_archive, provisioning.IMAGE_ARCHIVE_DIR)],
        cgroupns="private",
    )
    try:
        yield ProvisioningMachine(machine, host, document)
    finally:
        machine.stop_and_remove()


def test_the_installers_unit_runs_the_provisioning_container_in_the_machine(
    booted: ProvisioningMachine, podman: Podman, vulcano_image: ImageBuild, tmp_path: Path
) -> None:
    machine = booted.machine
    assert booted.document.content_type.startswith("text/cloud-config")
    booted.wait_booted()
    assert machine.read_file("/var/lib/cloud/instance/user-data.txt") == booted.document.text
    # The unit on disk is the installer's, byte for byte.
    assert machine.read_file(provisioning.UNIT_PATH) == booted.unit_text

    with booted.host.forward(PANEL_PORT) as forward:
        health = booted.wait_panel(forward.port).json()
        assert health == {
            "status": "ok",
            "cluster_name": CLUSTER,
            "cluster_size": SIZE,
            "state_dir_writable": True,
            "version": image.VERSION,
        }
        # every page but /healthz (and the nodes' join route) asks for the admin's login
        page = Provisioner(machine).get_panel(forward.port, "/")
        assert page.status_code == 200
        assert page.url.endswith("/login?next=/")
        assert "<h1>Log in</h1>" in page.text
        cert = Provisioner(machine).save_panel_certificate(tmp_path / "panel.pem")

        # Started by that unit: its main process is the unit's own ExecStart, with the
        # unit's Environment= substituted, and the container runs the image built here.
        assert machine.systemctl("is-active", provisioning.PROVISIONER_UNIT).stdout.strip() == (
            "active"
        )
        exec_start = provisioning.unit_command(booted.unit_text)
        assert exec_start[:2] == ["/usr/bin/docker", "run"]
        assert exec_start[-1] == image.REFERENCE
        assert provisioning.main_process_argv(machine) == exec_start
        state = provisioning.container_state(machine)
        assert state == {
            "status": "running",
            "image": "sha256:" + podman.image_id(vulcano_image.reference),
            "user": f"{image.USER_ID}:{image.USER_ID}",
            "network": "host",
        }
        owner = machine.exec(["stat", "-c", "%u %g %a", image.STATE_DIR]).stdout.split()
        assert owner == [str(image.USER_ID), str(image.USER_ID), "700"]

        # ... and it stops with the unit.
        machine.systemctl("stop", provisioning.PROVISIONER_UNIT, check=True)
        assert machine.systemctl("is-active", provisioning.PROVISIONER_UNIT).stdout.strip() in (
            "inactive",
            "failed",
        )
        assert provisioning.container_state(machine) == {}
        with pytest.raises(requests.ConnectionError):
            url = f"https://127.0.0.1:{forward.port}/healthz"
            requests.get(url, timeout=5, verify=str(cert))


def test_the_unit_restarts_a_container_that_died_and_its_state_survives(
    booted: ProvisioningMachine,
) -> None:
    machine = booted.machine
    booted.wait_booted()
    with booted.host.forward(PANEL_PORT) as forward:
        booted.wait_panel(forward.port)
        first = machine.exec(["docker", "inspect", "--format", "{{.Id}}", "vulcano-provisioner"])
        marker = f"{image.STATE_DIR}/kept-across-restarts"
        machine.exec(["docker", "exec", "vulcano-provisioner", "sh", "-c", f"echo kept > {marker}"])
        machine.exec(["docker", "kill", "vulcano-provisioner"])

        def replaced() -> bool:
            again = machine.exec(
                ["docker", "inspect", "--format", "{{.Id}}", "vulcano-provisioner"], check=False
            )
            return again.returncode == 0 and again.stdout != first.stdout

        wait_for(replaced, PANEL_UP_TIMEOUT, "a new provisioning container", 1.0)
        assert booted.wait_panel(forward.port).json()["status"] == "ok"
        kept = machine.exec(["docker", "exec", "vulcano-provisioner", "cat", marker])
        assert kept.stdout == "kept\n"
