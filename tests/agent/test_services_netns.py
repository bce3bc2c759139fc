"""Endpoints and health checks on whole agents: three hosts in network namespaces, one
real etcd, the overlay, HTTP servers in sandboxes, and the `vulcano` CLI.

What the agents publish is read from etcd; what answers is checked by HTTP over the
overlay from another host; that a unit was not restarted, by its process id.
"""

from __future__ import annotations

import shlex
import sys

import pytest

from tests.agent.fleet import Fleet
from vulcano.endpoints import CheckStates, CheckStatus, Endpoint, PortSpec
from vulcano.lab.cluster import running_where
from vulcano.lab.netns import TestHost
from vulcano.lab.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
WAIT = 20  # seconds for a change to show: checks run every second, fail after three

_SERVER = """\
import http.server, os, sys

port, sick_flag, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = self.path == "/healthz" and os.path.exists(sick_flag)
        body = b"sick\\n" if sick else f"hello from {name}".encode()
        self.send_response(500 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()
"""


def _web_unit(fleet: Fleet, extra: str = "", conflicts: str = "web@*") -> str:
    """A sandboxed HTTP server on :8080 whose /healthz fails while <dir>/sick-%n exists."""
    script = fleet.dir / "server.py"
    script.write_text(_SERVER)
    return (
        f"[Service]\nExecStart={sys.executable} {script} 8080 {fleet.dir}/sick-%n %n "
        f"{fleet.marker}-%n\n\n[X-Vulcano]\nSandbox=true\nPort=8080\n"
        f"Check=http :8080/healthz interval=1s timeout=1s\n{extra}\n"
        f"[X-Fleet]\nConflicts={conflicts}\n"
    )


def _sick(fleet: Fleet, unit: str, sick: bool) -> None:
    flag = fleet.dir / f"sick-{unit}"
    if sick:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


def _endpoint(fleet: Fleet, unit: str) -> Endpoint | None:
    found = list(fleet.store.client.get_prefix(fleet.store.ks.unit_endpoints(unit)))
    assert len(found) <= 1
    return Endpoint.from_json(found[0][0]) if found else None


def _check_states(fleet: Fleet, unit: str) -> CheckStates | None:
    found = list(fleet.store.client.get_prefix(fleet.store.ks.check_state(unit, "")))
    return CheckStates.from_json(found[0][0]) if found else None


def _get(host: TestHost, ip: str, port: int, path: str = "/") -> str:
    code = (
        "import urllib.request;"
        f"print(urllib.request.urlopen('http://{ip}:{port}{path}', timeout=5).read().decode())"
    )
    return host.exec([sys.executable, "-c", code], check=False).stdout.strip()


def test_endpoints_follow_the_instances_health_and_runtime_checks(fleet: Fleet) -> None:
    web = fleet.unit_file("web@.service", _web_unit(fleet))
    names = [f"web@{i}.service" for i in (1, 2, 3)]
    assert fleet.cli("submit", web).exit_code == 0
    r = fleet.cli("start", "--block-timeout", "60", *names)
    assert r.exit_code == 0, r.output
    where = running_where(fleet.store, names)
    assert where is not None
    assert sorted(where.values()) == sorted(h.machine_id for h in fleet.hosts)
    states = fleet.store.states()

    # three endpoints, at the sandbox addresses, each answering over the overlay
    for name in names:
        ep = wait_for(lambda n=name: _endpoint(fleet, n), WAIT, f"{name}'s endpoint")
        assert ep.unit == name and ep.machine_id == where[name]
        assert ep.address == states[name].sandbox_ip
        assert ep.ports == (PortSpec(8080),)
        other = next(h for h in fleet.hosts if h.machine_id != where[name])
        assert wait_for(lambda o=other, a=ep.address: _get(o, a, 8080), WAIT, name) == (
            f"hello from {name}"
        )
    r = fleet.cli("list-units", "--no-legend", "--fields", "unit,active,health")
    assert r.output.splitlines() == [f"{n}\tactive\tpassing" for n in names]
    pids = {n: fleet.pids(n) for n in names}
    assert all(len(p) == 1 for p in pids.values())

    # unhealthy: withdrawn while it runs on; healthy again: back
    _sick(fleet, names[0], True)
    wait_for(lambda: _endpoint(fleet, names[0]) is None, WAIT, "the sick endpoint withdrawn")
    # the same transaction writes the failing state; read until it shows, in case a pass
    # of the agent withdrew both for a moment (its log then says why: see the fixture)
    st = wait_for(
        lambda: (s := _check_states(fleet, names[0])) and s.status == CheckStatus.FAILING and s,
        WAIT,
        "the failing check state",
    )
    assert "500" in st.checks["http-8080_healthz"].output
    assert fleet.pids(names[0]) == pids[names[0]]
    assert fleet.store.states()[names[0]].active == "active"
    assert _endpoint(fleet, names[1]) is not None and _endpoint(fleet, names[2]) is not None
    r = fleet.cli("status", names[0])
    assert "Health: failing" in r.output and "HTTP GET" in r.output
    _sick(fleet, names[0], False)
    wait_for(lambda: _endpoint(fleet, names[0]), WAIT, "the endpoint back once healthy")

    # a check added at runtime that fails: withdrawn, not restarted; removed: back
    r = fleet.cli("check", "add", names[1], "tcp :9999 interval=1s failing=1", "--name", "shut")
    assert r.exit_code == 0, r.output
    wait_for(
        lambda: (
            (s := _check_states(fleet, names[1])) and s.checks["shut"].status == CheckStatus.FAILING
        ),
        WAIT,
        "the added check failing",
    )
    wait_for(lambda: _endpoint(fleet, names[1]) is None, WAIT, "withdrawn by the added check")
    r = fleet.cli("check", "list", names[1], "--no-legend", "--fields", "check,status")
    assert r.output.splitlines() == ["http-8080_healthz\tpassing", "shut\tfailing"]
    assert fleet.cli("check", "remove", names[1], "shut").exit_code == 0
    wait_for(lambda: _endpoint(fleet, names[1]), WAIT, "back once the check is removed")
    wait_for(
        lambda: (s := _check_states(fleet, names[1])) and "shut" not in s.checks,
        WAIT,
        "the removed check gone from the check state",
    )
    assert fleet.pids(names[1]) == pids[names[1]]

    # an exec check runs in the unit's sandbox: only there is its address on an interface
    ip = states[names[0]].sandbox_ip
    inside = shlex.join(["/bin/sh", "-c", f"ip -o -4 addr show | grep -qF ' {ip}/'"])
    r = fleet.cli("check", "add", names[0], f"exec interval=1s failing=1 -- {inside}")
    assert r.exit_code == 0, r.output
    wait_for(
        lambda: (
            (s := _check_states(fleet, names[0]))
            and s.checks.get("exec-sh", None) is not None
            and s.checks["exec-sh"].status == CheckStatus.PASSING
        ),
        WAIT,
        "the exec check passing in the sandbox",
    )
    assert _endpoint(fleet, names[0]) is not None

    # a check on the template applies to every instance
    r = fleet.cli("check", "add", "web@.service", "tcp :9998 interval=1s failing=1", "--name", "t")
    assert r.exit_code == 0, r.output
    for name in names:
        wait_for(lambda n=name: _endpoint(fleet, n) is None, WAIT, f"{name} withdrawn by t")
    assert fleet.cli("check", "remove", "web@.service", "t").exit_code == 0
    for name in names:
        wait_for(lambda n=name: _endpoint(fleet, n), WAIT, f"{name} back without t")
    assert {n: fleet.pids(n) for n in names} == pids

    # stopped: withdrawn, and its check state with it
    r = fleet.cli("stop", "--block-timeout", "30", names[2])
    assert r.exit_code == 0, r.output
    wait_for(lambda: _endpoint(fleet, names[2]) is None, WAIT, "the stopped one withdrawn")
    wait_for(lambda: _check_states(fleet, names[2]) is None, WAIT, "its check state gone")
    assert fleet.pids(names[0]) == pids[names[0]]
    assert _endpoint(fleet, names[0]) is not None and _endpoint(fleet, names[1]) is not None


def test_check_restart_restarts_only_the_instance_that_stays_failing(fleet: Fleet) -> None:
    sick = fleet.unit_file(
        "sick.service", _web_unit(fleet, "CheckRestart=3s\n", conflicts="well.service")
    )
    well = fleet.unit_file("well.service", _web_unit(fleet, "CheckRestart=3s\n"))
    _sick(fleet, "sick.service", True)
    r = fleet.cli("start", "--block-timeout", "60", sick, well)
    assert r.exit_code == 0, r.output
    [first] = wait_for(lambda: fleet.pids("sick.service"), WAIT, "sick.service running")
    [kept] = fleet.pids("well.service")
    wait_for(lambda: _endpoint(fleet, "well.service"), WAIT, "the healthy one's endpoint")
    # failing after 3 results, then failing 3 s: restarted (a new process)
    wait_for(lambda: [p for p in fleet.pids("sick.service") if p != first], 30, "a restart")
    st = wait_for(
        lambda: (s := _check_states(fleet, "sick.service")) and "restarted" in s.note and s,
        WAIT,
        "the restart noted in the check state",
    )
    assert "CheckRestart=3s" in st.note
    assert _endpoint(fleet, "sick.service") is None
    # healthy now: it stays up, published, not restarted again
    _sick(fleet, "sick.service", False)
    wait_for(lambda: _endpoint(fleet, "sick.service"), WAIT, "published once healthy")
    current = fleet.pids("sick.service")
    assert len(current) == 1 and first not in current
    assert fleet.pids("well.service") == [kept]
    r = fleet.cli("status", "sick.service")
    assert "Note: restarted" in r.output
    r = fleet.cli("journal", "--lines", "100", "sick.service")
    assert "restarting: its checks kept failing (CheckRestart=)" in r.output
