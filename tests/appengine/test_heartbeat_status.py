"""The status page: machines up / late / down (decommissioned apart), units, the last
heartbeat's age, "unreachable" after three intervals, and SVG charts of the history."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine import policy
from appengine.models import read_token
from appengine.status import age_text, standing
from tests.appengine.heartbeat_helpers import machine, post, reporting_install, summary
from vulcano.heartbeat import MachineHealth, UnitSummary


def _page(client: FlaskClient, manage: str, query: str = "") -> str:
    answer = client.get(f"/status/{read_token(manage)}{query}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "private, no-store"
    return answer.text


def _count(page: str, what: str) -> int:
    match = re.search(rf'<span id="count-{what}">(\d+)</span>', page)
    return int(match.group(1)) if match else 0


def _state(page: str) -> str:
    match = re.search(r'data-state="([a-z]+)"', page)
    assert match
    return match.group(1)


def test_before_any_heartbeat_the_page_says_so(client: FlaskClient) -> None:
    manage, _ = reporting_install(client)
    page = _page(client, manage)
    assert _state(page) == "never" and "No heartbeat yet" in page


def test_machines_up_late_and_down_with_decommissioned_apart(client: FlaskClient) -> None:
    manage, secret = reporting_install(client)
    machines = [
        machine(0),
        machine(1),
        machine(2, MachineHealth.LATE),
        machine(3, MachineHealth.DOWN, last_seen=0),
        machine(4, MachineHealth.DECOMMISSIONED, hostname="retired"),
    ]
    units = [
        UnitSummary("web@1.service", machines[0].machine_id, "active", "running"),
        UnitSummary("db.service", machines[3].machine_id, "failed", "failed"),
        UnitSummary("batch.service", "", "inactive", "dead"),
    ]
    assert post(client, secret, summary(1, machines=machines, units=units)).status_code == 200
    page = _page(client, manage)
    assert _state(page) == "reporting"
    assert [_count(page, w) for w in ("up", "late", "down", "decommissioned")] == [2, 1, 1, 1]
    table = page.split('id="machines"', 1)[1].split("</table>", 1)[0]
    healths = re.findall(r'data-health="([a-z]+)"', table)
    assert healths == ["up", "up", "late", "down"]  # never a decommissioned one here
    assert "retired" not in table
    assert "retired" in page.split('id="decommissioned"', 1)[1]
    units_table = page.split('id="units"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-unit="([^"]+)"', units_table) == [
        "batch.service",
        "db.service",
        "web@1.service",
    ]
    assert "node-0" in units_table  # the unit's machine by its hostname
    assert "1 active" in page and "1 failed" in page


@pytest.mark.parametrize(
    ("intervals_ago", "state"),
    [(0.2, "reporting"), (2.0, "late"), (3.5, "unreachable")],
)
def test_the_clusters_state_comes_from_the_latest_at_and_interval(
    client: FlaskClient, intervals_ago: float, state: str
) -> None:
    manage, secret = reporting_install(client)
    at = time.time() - intervals_ago * 60
    assert post(client, secret, summary(1, at=at, interval=60)).status_code == 200
    page = _page(client, manage)
    assert _state(page) == state
    if state == "unreachable":
        assert "Unreachable: no heartbeat for 3 min" in page


def test_standing_is_computed_at_read_time() -> None:
    sent = summary(1, at=1_800_000_000.0, interval=30)
    now = sent.at + policy.UNREACHABLE_INTERVALS * 30
    assert standing(sent, now).state == "late"
    assert standing(sent, now + 1).state == "unreachable"
    assert standing(None, now).state == "never"
    assert standing(sent, now).age == 90


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "never"), (5, "5 s"), (600, "10 min"), (12_000, "3 h 20 min"), (190_000, "2 d 4 h")],
)
def test_ages_read_as_people_say_them(seconds: float | None, text: str) -> None:
    assert age_text(seconds) == text


def test_the_history_charts_are_svg_for_every_tier(app: Flask, client: FlaskClient) -> None:
    app.config["HEARTBEATS_PER_INSTALL_PER_MINUTE"] = 1000
    manage, secret = reporting_install(client)
    now = time.time()
    for seq in range(1, 31):
        at = now - 60 * (31 - seq)
        assert post(client, secret, summary(seq, at=at, machines=seq % 4 + 1)).status_code == 200
    for tier in ("6h", "3d", "30d"):
        page = _page(client, manage, f"?range={tier}")
        assert f'<strong id="tier-current">{tier}</strong>' in page
        for metric in ("machines_up", "units_running", "load", "cpu"):
            figure = page.split(f'id="chart-{metric}"', 1)[1].split("</figure>", 1)[0]
            assert "<svg" in figure and 'class="mean"' in figure
    assert "<script" not in page
    fine = _page(client, manage)
    points = re.search(r'id="chart-machines_up".*?class="mean" points="([^"]+)"', fine, re.S)
    assert points and len(points.group(1).split()) == 30  # one point a minute


def test_the_status_page_needs_the_read_token(client: FlaskClient) -> None:
    manage, secret = reporting_install(client)
    assert client.get(f"/status/{manage}").status_code == 404  # the manage token is not it
    assert client.get(f"/status/{secret}").status_code == 404
    assert client.get("/status/" + "A" * 43).status_code == 404


def test_the_install_page_links_its_status_page(client: FlaskClient) -> None:
    manage, _ = reporting_install(client)
    page = client.get(f"/installs/{manage}").text
    assert f'href="/status/{read_token(manage)}"' in page
