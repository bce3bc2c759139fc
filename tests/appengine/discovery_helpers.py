"""Small checks the discovery tests share."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask

from appengine import create_app
from vulcano.lab.services import Etcd
from vulcano.lab.wsgi import WsgiServer

# Low enough that an idle watch ends quickly in tests; etcd re-sends it either way.
TEST_WATCH_TIMEOUT = 1.0


def make_app(**config: Any) -> Flask:
    """The installer app configured for tests, on the emulator the environment names."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DISCOVERY_WATCH_TIMEOUT": TEST_WATCH_TIMEOUT,
            **config,
        }
    )


def v2_error(answer: Any) -> tuple[int, int]:
    """(status, errorCode) of an answer that must be the v2 error JSON, whole."""
    assert answer.mimetype == "application/json", answer.data
    body = answer.json
    assert set(body) == {"errorCode", "message", "cause", "index"}, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["cause"], str) and body["cause"]
    assert isinstance(body["index"], int)
    return answer.status_code, body["errorCode"]


def count_entities(app: Flask, model: Any) -> int:
    """How many entities of `model` Datastore holds (ancestor-free, so test-only)."""
    with app.extensions["ndb_client"].context():
        count: int = model.query().count()
        return count


# --- real etcd members -----------------------------------------------------------------

ETCDCTL_TIMEOUT = 15
# Generous: four engineers share two cores.
START_TIMEOUT = 60

# members(name, *etcd_args) -> an Etcd not yet started, stopped at teardown.
MemberFactory = Callable[..., Etcd]


def new_discovery_url(server: WsgiServer, size: int) -> str:
    answer = requests.get(f"{server.url}/new", params={"size": size}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.text


def etcdctl(member: Etcd, *args: str) -> str:
    done = subprocess.run(
        ["etcdctl", "--endpoints", member.client_url, "--command-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=ETCDCTL_TIMEOUT,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def member_names(member: Etcd) -> list[str]:
    listing = json.loads(etcdctl(member, "member", "list", "-w", "json"))
    return sorted(m.get("name", "") for m in listing["members"])


def start_all(cluster: list[Etcd]) -> None:
    """Start every member at once, then wait for each to answer healthy."""
    for member in cluster:
        member.start()
    for member in cluster:
        try:
            member.wait_healthy(START_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{member.name} never became healthy; its log:\n{member.log()[-3000:]}")
