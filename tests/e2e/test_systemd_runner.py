"""The systemd runner against a real systemd: a machine's PID 1.

The runner's own code runs inside the machine (the machine image's /opt/vulcano is
this tree's agent), one `python3` per call, as the agent would call it; what it says is
checked against `systemctl` in the same machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vulcano.lab import machines as lab_machines
from vulcano.lab.machines import Machine
from vulcano.lab.podman import Podman
from vulcano.lab.poll import wait_for
from vulcano.nodeconfig import AGENT_VENV

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(900)]

USER_DATA = "#cloud-config\nhostname: runner\n"
WAIT = 30.0

# One runner call: argv = op, unit, [hash | seconds]; unit text on stdin for "load".
RUNNER = """
import json, sys, time
from agent.units.runners.base import RunContext
from agent.units.runners.systemd import SystemdRunner
runner = SystemdRunner()
op, name, arg = sys.argv[1], sys.argv[2], (sys.argv[3:] or [""])[0]
if op == "load":
    runner.load(RunContext(name, arg, "runner", "m1", sys.argv[4] if sys.argv[4:] else None),
                sys.stdin.read())
elif op == "fence":
    runner.fence(time.monotonic() + float(arg) if float(arg) > 0 else 0.0)
elif op != "status":
    getattr(runner, op)(name)
st = runner.status(name)
seq, lines = runner.journal(name)
print(json.dumps({"load": st.load, "active": st.active, "sub": st.sub, "hash": st.hash,
                  "reason": st.reason, "loaded": runner.loaded(), "seq": seq,
                  "journal": lines}))
"""


@pytest.fixture(scope="module")
def machine(podman: Podman, machine_image: str) -> Iterator[Machine]:
    with lab_machines.machine(podman, machine_image, USER_DATA, name="runner") as m:
        m.wait_cloud_init()
        yield m


def call(machine: Machine, op: str, unit: str, *args: str, text: str | None = None) -> Any:
    argv = [f"{AGENT_VENV}/bin/python3", "-c", RUNNER, op, unit, *args]
    return json.loads(machine.exec(argv, input=text).stdout)


def unit_lines(machine: Machine, unit: str) -> list[str]:
    """Every line the unit's journal holds, as journalctl prints them."""
    argv = ["journalctl", "--unit", unit, "--output", "cat", "--no-pager"]
    return machine.exec(argv).stdout.splitlines()


def systemd_says(machine: Machine, unit: str, prop: str) -> str:
    return machine.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def fence_runs(machine: Machine) -> int:
    """How often the fence timer's service has started in this machine."""
    journal = machine.journal("vulcano-fence.service", lines=10000)
    return sum(1 for line in journal.splitlines() if "Started" in line and "Vulcano fence" in line)


def wait_state(machine: Machine, unit: str, active: str, sub: str | None = None) -> Any:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(call(machine, "status", unit))
        return bool(seen["active"] == active and (sub is None or seen["sub"] == sub))

    try:
        wait_for(reached, WAIT, f"{unit} {active}/{sub}", 0.2)
    except TimeoutError:
        raise AssertionError(f"{seen}\n{machine.journal(unit)}") from None
    return seen


def unit(exec_start: str, *service: str) -> str:
    lines = ["[Unit]", "Description=runner test", "", "[Service]", f"ExecStart={exec_start}"]
    return "\n".join([*lines, *service]) + "\n"


def test_a_loaded_unit_starts_and_stops_and_its_files_go_on_unload(machine: Machine) -> None:
    name = "rt-basic.service"
    loaded = call(
        machine, "load", name, "h1", text=unit("/bin/sh -c 'echo hello-%n; exec sleep infinity'")
    )
    assert loaded["load"] == "loaded" and loaded["hash"] == "h1"
    assert name in loaded["loaded"]
    call(machine, "start", name)
    running = wait_state(machine, name, "active", "running")
    assert machine.systemctl("is-active", name).stdout.strip() == "active"
    wait_for(
        lambda: "hello-rt-basic.service" in call(machine, "status", name)["journal"],
        WAIT,
        "journal",
    )
    assert running["reason"] == ""
    call(machine, "stop", name)
    wait_state(machine, name, "inactive", "dead")
    assert machine.systemctl("is-active", name).stdout.strip() == "inactive"
    gone = call(machine, "unload", name)
    assert name not in gone["loaded"]
    assert gone["load"] == "not-found"
    assert machine.exec(["test", "-e", f"/run/systemd/system/{name}"], check=False).returncode == 1


def test_restart_always_brings_a_killed_main_process_back(machine: Machine) -> None:
    name = "rt-restart.service"
    call(
        machine,
        "load",
        name,
        "h1",
        text=unit("/bin/sleep infinity", "Restart=always", "RestartSec=0.2"),
    )
    call(machine, "start", name)
    wait_state(machine, name, "active", "running")
    first = systemd_says(machine, name, "MainPID")
    machine.exec(["kill", "-9", first])
    wait_for(
        lambda: (
            systemd_says(machine, name, "MainPID") not in ("0", first)
            and call(machine, "status", name)["active"] == "active"
        ),
        WAIT,
        "a new main process",
        0.2,
    )
    assert int(systemd_says(machine, name, "NRestarts")) >= 1
    call(machine, "unload", name)


def test_a_failed_unit_says_why_and_new_content_clears_it(machine: Machine) -> None:
    name = "rt-failing.service"
    call(machine, "load", name, "h1", text=unit("/bin/sh -c 'echo about-to-fail; exit 3'"))
    call(machine, "start", name)
    failed = wait_state(machine, name, "failed")
    assert failed["reason"] == "exit-code"
    assert "about-to-fail" in failed["journal"]
    again = call(machine, "load", name, "h2", text=unit("/bin/sleep infinity"))
    assert again["active"] == "inactive" and again["hash"] == "h2"
    call(machine, "start", name)
    wait_state(machine, name, "active", "running")
    call(machine, "unload", name)


def test_the_journal_tail_moves_on_past_its_last_hundred_lines(machine: Machine) -> None:
    name = "rt-chatty.service"
    script = "/bin/sh -c 'for i in $(seq 1 150); do echo line-$i; done; exec sleep infinity'"
    call(machine, "load", name, "h1", text=unit(script))
    call(machine, "start", name)
    wait_for(lambda: "line-150" in call(machine, "status", name)["journal"], WAIT, "150 lines")
    first = call(machine, "status", name)
    assert len(first["journal"]) == 100
    # seq counts the unit's own lines (followers take seq - seen as the new ones)
    assert first["seq"] == len(unit_lines(machine, name))
    call(machine, "stop", name)
    wait_state(machine, name, "inactive")
    call(machine, "start", name)
    # The reports publish when seq moves: it must, though the tail keeps its length.
    wait_for(
        lambda: (lambda st: st["journal"][-1] == "line-150" and st["seq"] > first["seq"])(
            call(machine, "status", name)
        ),
        WAIT,
        "the second run's lines",
    )
    second = call(machine, "status", name)
    assert len(second["journal"]) == 100
    assert second["seq"] == len(unit_lines(machine, name))
    assert (
        second["journal"]
        == machine.exec(
            ["journalctl", "--unit", name, "--lines", "100", "--output", "cat", "--no-pager"]
        ).stdout.splitlines()
    )
    call(machine, "unload", name)


def test_a_sandboxed_unit_joins_its_namespace_and_new_content_without_one_leaves_it(
    machine: Machine,
) -> None:
    name = "rt-sandboxed.service"
    machine.exec(["ip", "netns", "add", "rt-sb"])
    try:
        call(machine, "load", name, "h1", "rt-sb", text=unit("/bin/sleep infinity"))
        call(machine, "start", name)
        wait_state(machine, name, "active", "running")
        pid = systemd_says(machine, name, "MainPID")
        inside = machine.exec(["readlink", f"/proc/{pid}/ns/net"]).stdout
        sandbox = machine.exec(["ip", "netns", "exec", "rt-sb", "readlink", "/proc/self/ns/net"])
        assert inside == sandbox.stdout
        call(machine, "stop", name)
        wait_state(machine, name, "inactive")
        call(machine, "load", name, "h2", text=unit("/bin/sleep infinity"))
        call(machine, "start", name)
        wait_state(machine, name, "active", "running")
        pid = systemd_says(machine, name, "MainPID")
        host = machine.exec(["readlink", "/proc/1/ns/net"]).stdout
        assert machine.exec(["readlink", f"/proc/{pid}/ns/net"]).stdout == host
        call(machine, "unload", name)
    finally:
        machine.exec(["ip", "netns", "delete", "rt-sb"], check=False)


def test_the_fence_stops_units_at_its_deadline_with_no_agent_left(machine: Machine) -> None:
    """Armed by a process that then exits (a killed agent), the fence still fires, and it
    wins over Restart=: the unit stays down. A later confirmation moves it on."""
    name = "rt-fenced.service"
    call(
        machine,
        "load",
        name,
        "h1",
        text=unit("/bin/sleep infinity", "Restart=always", "RestartSec=0.2"),
    )
    call(machine, "start", name)
    wait_state(machine, name, "active", "running")
    call(machine, "fence", name, "2")
    call(machine, "fence", name, "600")  # a confirmation came: the deadline moves on
    time.sleep(3)  # past the first deadline (not a timing assertion: it must not fire)
    assert call(machine, "status", name)["active"] == "active"
    fired = fence_runs(machine)
    call(machine, "fence", name, "1")
    wait_state(machine, name, "inactive")
    assert fence_runs(machine) == fired + 1  # the timer stopped it, not the call that armed it
    time.sleep(1)  # RestartSec is 0.2 s: a restart would show by now
    assert call(machine, "status", name)["active"] == "inactive"
    call(machine, "unload", name)


def test_fencing_now_kills_a_unit_that_ignores_sigterm(machine: Machine) -> None:
    name = "rt-stubborn.service"
    script = "/bin/sh -c 'trap \"\" TERM; while :; do sleep 1; done'"
    call(machine, "load", name, "h1", text=unit(script, "Restart=always", "TimeoutStopSec=600"))
    call(machine, "start", name)
    wait_state(machine, name, "active", "running")
    call(machine, "fence", name, "0")
    killed = wait_state(machine, name, "failed")  # SIGKILL, not its 600 s stop timeout
    assert killed["reason"] == "signal"
    call(machine, "unload", name)
    assert call(machine, "status", name)["loaded"] == []
