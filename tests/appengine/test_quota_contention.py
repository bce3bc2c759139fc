"""A client's requests at once contend on its quota counter: a 503 to try again, never a 500.

The counter is one Datastore entity per client, bound and hour (appengine.limits). Here
two threads write that very entity without pause while the client asks for discovery
URLs, so the requests' counting transactions keep losing races in the real emulator.
Under ndb's own retries the losers ended in a 500 after ~9 s; now each request either
counts and answers, or answers a 503 with Retry-After that names the cause, having
made nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.cloud import ndb

from appengine import policy
from appengine.discovery_models import DiscoveryToken
from appengine.limits import ClientQuota
from tests.appengine.discovery_helpers import count_entities, v2_error

CLIENT = "127.0.0.1"  # the Flask test client's address
WRITERS = 2


def _counter(app: Flask, bound: str) -> tuple[ndb.Key, datetime]:
    window = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    name = hashlib.sha256(f"{bound}|{CLIENT}|{window.isoformat()}".encode()).hexdigest()
    with app.extensions["ndb_client"].context():
        return ndb.Key(ClientQuota, name), window


@pytest.fixture
def contended(app: Flask) -> Iterator[list[int]]:
    """Writers putting the client's NEW_TOKENS counter (at 0) until the test ends."""
    key, window = _counter(app, "NEW_TOKENS_PER_CLIENT_PER_HOUR")
    stop = threading.Event()
    writes = [0] * WRITERS

    def write(i: int) -> None:
        with app.extensions["ndb_client"].context():
            while not stop.is_set():
                ClientQuota(key=key, count=0, expires=window).put(use_cache=False)
                writes[i] += 1

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        yield writes
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def test_requests_racing_their_quota_counter_get_an_answer_or_a_503_never_a_500(
    app: Flask, client: FlaskClient, contended: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a short deadline, so that some requests give up within the test's few seconds
    monkeypatch.setattr(policy, "QUOTA_TXN_DEADLINE", 0.3)
    statuses = []
    for _ in range(8):
        answer = client.get("/new?size=3")
        statuses.append(answer.status_code)
        assert answer.status_code in {200, 503}, answer.text
        if answer.status_code == 503:
            assert v2_error(answer)[0] == 503
            assert answer.json["cause"] == (
                "new discovery tokens: too many requests from one address at once; "
                "try again shortly"
            )
            assert answer.headers["Retry-After"] == str(policy.QUOTA_BUSY_RETRY_AFTER)
    assert sum(contended) > len(statuses), "the counter was not contended"
    # every 200 made one token, every 503 none
    assert count_entities(app, DiscoveryToken) == statuses.count(200)
