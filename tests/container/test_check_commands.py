"""`vulcano check add|list|remove` against a real etcd: what each writes, what it refuses
(with the thing named, a non-zero exit, and etcd unchanged), and health in list-units and
status."""

from __future__ import annotations

import json
from pathlib import Path

import etcd3
import pytest

from tests.container.conftest import KS, MACHINE, Invoke, announce, dump, report
from vulcano.endpoints import CheckResult, CheckSpec, CheckStates, CheckStatus
from vulcano.records import UnitState

WEB = (
    "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Vulcano]\nPort=8080\n"
    "Check=http :8080/healthz interval=2s name=alive\n\n[X-Fleet]\nConflicts=web@*\n"
)


@pytest.fixture
def web(vulcano: Invoke, tmp_path: Path) -> str:
    path = tmp_path / "web@.service"
    path.write_text(WEB)
    r = vulcano("submit", str(path))
    assert r.exit_code == 0, r.output
    return "web@.service"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "nope.service", "tcp :6379"], "unit nope.service is not submitted"),
        (["add", "db@1.service", "tcp :6379"], "nor its template db@.service"),
        (["add", "web@.service", "ftp :21"], "unknown check kind 'ftp'"),
        (["add", "web@.service", "http :8080 interval=fast"], "interval="),
        (["add", "web@.service", "tcp :99999"], "port 99999 is outside 1-65535"),
        (["add", "web@.service", "exec -- "], "no command after '--'"),
        (["add", "web@.service", "tcp :1", "--name", "a/b"], "--name wants letters"),
        (["add", "web@.service", "tcp :1", "--name", "alive"], "declares check alive in its file"),
        (["remove", "web@.service", "alive"], "declared in its unit file"),
        (["remove", "web@.service", "ghost"], "unit web@.service has no check named ghost"),
        (["remove", "nope.service", "ghost"], "unit nope.service is not submitted"),
        (["list", "nope.service"], "unit nope.service is not submitted"),
    ],
)
def test_bad_check_commands_name_what_is_wrong_and_change_nothing(
    vulcano: Invoke, client: etcd3.Etcd3Client, web: str, args: list[str], says: str
) -> None:
    before = dump(client)
    r = vulcano("check", *args)
    assert r.exit_code != 0
    assert says in r.output
    assert dump(client) == before


def test_check_add_writes_a_runtime_check_once_and_remove_takes_it_away(
    vulcano: Invoke, client: etcd3.Etcd3Client, web: str
) -> None:
    r = vulcano("check", "add", web, "http :8080/ready interval=2s timeout=1s", "--name", "ready")
    assert r.exit_code == 0, r.output
    value, _ = client.get(KS.check(web, "ready"))
    assert value is not None
    spec = CheckSpec.from_json(value)
    assert (spec.kind, spec.target, spec.interval, spec.timeout, spec.name) == (
        "http",
        (":8080/ready",),
        2.0,
        1.0,
        "ready",
    )
    before = dump(client)
    r = vulcano("check", "add", web, "tcp :8080", "--name", "ready")
    assert r.exit_code != 0 and "already has a check named ready" in r.output
    assert dump(client) == before
    # unnamed: the name is made from kind and target
    r = vulcano("check", "add", web, "tcp :8080")
    assert r.exit_code == 0, r.output
    assert client.get(KS.check(web, "tcp-8080"))[0] is not None
    r = vulcano("check", "list", web, "--no-legend", "--fields", "unit,check,kind,target,source")
    assert r.output.splitlines() == [
        f"{web}\talive\thttp\t:8080/healthz\tfile",
        f"{web}\tready\thttp\t:8080/ready\truntime",
        f"{web}\ttcp-8080\ttcp\t:8080\truntime",
    ]
    r = vulcano("check", "remove", web, "ready")
    assert r.exit_code == 0, r.output
    assert client.get(KS.check(web, "ready"))[0] is None
    assert client.get(KS.check(web, "tcp-8080"))[0] is not None


def test_check_list_list_units_and_status_show_what_machines_report(
    vulcano: Invoke, client: etcd3.Etcd3Client, web: str
) -> None:
    assert vulcano("check", "add", "web@1.service", "tcp :8080", "--name", "port").exit_code == 0
    r = vulcano("start", "--no-block", "web@1.service")
    assert r.exit_code == 0, r.output
    announce(client)
    name = "web@1.service"
    report(client, UnitState(name=name, machine_id=MACHINE.id, load="loaded", active="active"))
    states = CheckStates(
        name,
        MACHINE.id,
        {
            "alive": CheckResult(CheckStatus.PASSING, "HTTP GET ...: 200 OK", 1.0, 4),
            "port": CheckResult(CheckStatus.FAILING, "TCP connect: refused", 2.0, 3),
        },
    )
    client.put(KS.check_state(name, MACHINE.id), states.to_json())
    r = vulcano("check", "list", name, "--json")
    rows = json.loads(r.output)
    assert [(x["unit"], x["check"], x["status"], x["output"]) for x in rows] == [
        (name, "alive", "passing", "HTTP GET ...: 200 OK"),
        (name, "port", "failing", "TCP connect: refused"),
    ]
    assert all(x["machine"].endswith("/10.9.0.1") for x in rows)
    r = vulcano("list-units", "--no-legend", "--fields", "unit,active,health")
    assert r.output.splitlines() == [f"{name}\tactive\tfailing"]
    r = vulcano("list-units", "--no-legend")  # the default columns stay fleetctl's
    assert r.output.split("\t")[0] == name and len(r.output.strip().split("\t")) == 4
    r = vulcano("status", name)
    assert "Health: failing" in r.output
    assert "Check: port failing" in r.output and "TCP connect: refused" in r.output
