"""The panel's live health page on real etcd: machines by standing with their vitals, units by
state, behind the login, linked from the cluster's page."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from agent.monitor.component import Monitor
from tests.container.panel.conftest import Browser
from tests.container.panel.lab import Lab
from vulcano.keyspace import Keyspace
from vulcano.lab.poll import wait_for
from vulcano.records import DesiredState, UnitSource

KS = Keyspace()


def row(page: str, machine_id: str) -> str:
    return page.split(f'<tr data-machine="{machine_id}">', 1)[1].split("</tr>", 1)[0]


@pytest.fixture
def sampled(lab: Lab, tmp_path: Path) -> Iterator[list[Monitor]]:
    """Every lab machine publishing samples, with its units, every second."""
    monitors = [
        Monitor(n.member, tmp_path, interval=1, units=n.units.reports.states) for n in lab.nodes
    ]
    for m in monitors:
        m.start()
    for m in monitors:
        wait_for(m.published.is_set, 5, "a first sample")
    yield monitors
    for m in monitors:
        m.stop()


def test_the_page_shows_each_machine_with_its_vitals_and_the_units_by_state(
    admin: Browser, lab_cluster: str, lab: Lab, sampled: list[Monitor]
) -> None:
    client = lab.registry.client
    name = f"sleep-{secrets.token_hex(3)}.service"
    text = lab.unit("[Service]\nExecStart=/bin/sh -c 'exec sleep 1000' MARK\nTimeoutStopSec=3\n")
    lab.registry.submit([UnitSource(name, text)])
    lab.registry.set_desired([name], DesiredState.LAUNCHED)
    wait_for(lambda: (s := lab.registry.states().get(name)) is not None and s.active == "active",
             15, "the unit running")  # fmt: skip
    client.put(KS.machine_decommissioned("retired01"), json.dumps({"machine_id": "retired01"}))
    subnet = {"machine_id": "crashed01", "public_ip": "192.0.2.9", "backend_type": "vxlan",
              "vtep_mac": "02:00:00:00:00:09"}  # fmt: skip
    client.put(KS.subnet("10.244.9.0/24"), json.dumps(subnet))

    page = admin.get("/clusters/lab/health")
    assert page.status_code == 200
    text = page.text
    for node in lab.nodes:
        mine = row(text, node.member.machine_id)
        assert '<span class="state up">up</span>' in mine
        assert re.search(r"<td data-load>\d+\.\d\d</td>", mine)
        assert re.search(r"<td data-cpu>\d+\.\d %</td>", mine)
        assert re.search(r"<td data-mem>\d+\.\d %</td>", mine) and "<td data-mem>0.0 %" not in mine
        assert re.search(r"<td data-disk>\d+\.\d %</td>", mine)
        assert re.search(r"<td data-age>\d s ago</td>", mine)
    assert '<span class="state down">down</span>' in row(text, "crashed01")
    assert "never" in row(text, "crashed01")
    assert '<span class="state decommissioned">decommissioned</span>' in row(text, "retired01")
    assert '<span class="state up" data-count="up">2 up</span>' in text
    assert 'data-count="down">1 down' in text and 'data-count="decommissioned">1 ' in text
    unit = text.split(f'<tr data-unit="{name}" data-state="active">', 1)[1].split("</tr>", 1)[0]
    host = lab.registry.states()[name].machine_id
    assert host is not None and host[:12] in unit  # the lab's hostnames are their ids
    assert "<td>running</td>" in unit


def test_a_machine_whose_sampler_stopped_turns_late_then_down_on_the_page(
    admin: Browser, lab_cluster: str, lab: Lab, sampled: list[Monitor]
) -> None:
    quiet = sampled[0]
    quiet.stop_event.set()  # the agent keeps its lease; its samples stop
    old = quiet.last
    assert old is not None
    # age the sample as the clock would: the same sample, written 20 s and 50 s earlier
    for age, health in ((20, "late"), (50, "down")):
        value = old.to_json().replace(f'"at":{old.at}', f'"at":{old.at - age}')
        lab.registry.client.put(KS.sample(old.machine_id), value, lease=quiet.machine.lease_id())
        mine = row(admin.get("/clusters/lab/health").text, old.machine_id)
        assert f'<span class="state {health}">{health}</span>' in mine


def test_the_cluster_page_links_to_its_health(admin: Browser, lab_cluster: str) -> None:
    page = admin.get("/clusters/lab").text
    assert 'id="health-link" href="/clusters/lab/health"' in page
    assert 'href="/clusters/lab/health">Health</a>' in admin.get("/clusters/lab/machines").text


def test_an_empty_cluster_says_so(admin: Browser, lab_cluster: str) -> None:
    page = admin.get("/clusters/lab/health").text
    assert 'id="no-machines"' in page and 'id="no-units"' in page


def test_the_page_needs_the_login_and_a_known_cluster(
    app: Flask, admin: Browser, lab_cluster: str
) -> None:
    answer = app.test_client().get("/clusters/lab/health")  # a stranger's browser
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")
    assert admin.get("/clusters/nope/health").status_code == 404
