"""Small checks the discovery tests share."""

from __future__ import annotations

from typing import Any

from flask import Flask

from appengine import create_app

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
