"""The machine harness tells what went wrong in a machine and always cleans up."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import MachineFactory
from vulcano.lab import machines as lab_machines
from vulcano.lab.errors import CloudInitFailed
from vulcano.lab.netns import Underlay
from vulcano.lab.podman import Podman

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]

FAILING = """\
#cloud-config
hostname: broken
runcmd:
  - [sh, -c, "echo the-runcmd-said-this; exit 3"]
"""

QUIET = """\
#cloud-config
hostname: quiet
write_files:
  - path: /etc/systemd/system/hello.service
    content: |
      [Service]
      ExecStart=/bin/sh -c 'echo hello-from-the-journal; sleep infinity'
runcmd:
  - [systemctl, daemon-reload]
  - [systemctl, start, hello.service]
"""


def exists(podman: Podman, container: str) -> bool:
    return podman.run("container", "exists", container, check=False).returncode == 0


def test_a_failed_boot_raises_with_cloud_init_s_log_and_the_machine_is_removed(
    podman: Podman, machine_image: str
) -> None:
    with (
        pytest.raises(CloudInitFailed) as failed,
        lab_machines.machine(podman, machine_image, FAILING, name="broken") as machine,
    ):
        machine.wait_cloud_init()
    assert failed.value.status == "error"
    assert "the-runcmd-said-this" in failed.value.log
    assert not exists(podman, machine.container)


def test_a_machine_runs_units_from_its_user_data_and_shows_their_journal(
    underlay: Underlay, machines: MachineFactory
) -> None:
    host = underlay.add_host()
    machine = machines(host, QUIET)
    machine.wait_cloud_init()
    # Its only way out is the underlay the test made: no default route, no other link.
    assert machine.exec(["ip", "-4", "route"]).stdout.split()[0] == str(underlay.subnet)
    assert "default" not in machine.exec(["ip", "route", "show", "table", "all"]).stdout
    links = machine.exec(["ip", "-o", "link"]).stdout
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == [
        "eth0",
        "lo",
    ]
    assert machine.systemctl("is-active", "hello.service").stdout.strip() == "active"
    assert "hello-from-the-journal" in machine.journal("hello.service")


def test_a_killed_machine_stops_at_once_and_is_still_removed(
    podman: Podman, machine_image: str
) -> None:
    machine = lab_machines.start_machine(podman, machine_image, QUIET, name="killed")
    try:
        machine.wait_cloud_init()
        machine.kill()
        assert not machine.running()
    finally:
        machine.stop_and_remove()
    assert not exists(podman, machine.container)
