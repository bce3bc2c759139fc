"""The stored history on the real emulator: bounded however many heartbeats arrive, and one
entity write per heartbeat whatever the cluster's size."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.cloud.ndb import _datastore_api

from appengine.heartbeat_models import ClusterHeartbeat
from appengine.heartbeat_rings import TIERS
from appengine.models import Install
from tests.appengine.heartbeat_helpers import post, reporting_install, snapshot, summary

T0 = 1_800_000_000.0


@pytest.fixture
def unbounded(app: Flask) -> Flask:
    app.config["HEARTBEATS_PER_INSTALL_PER_MINUTE"] = 1_000_000
    return app


def _entity(app: Flask, manage: str) -> ClusterHeartbeat:
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        entity: ClusterHeartbeat = ClusterHeartbeat.key_for(install.key).get()
        return entity


def test_the_rings_keep_a_fixed_size_however_many_heartbeats_arrive(
    unbounded: Flask, client: FlaskClient
) -> None:
    manage, secret = reporting_install(client)
    step = 300.0  # five minutes a summary: 100 of them wrap the 6-hour ring
    sizes = []
    for seq in range(1, 101):
        answer = post(client, secret, summary(seq, at=T0 + step * seq, machines=3))
        assert answer.status_code == 200, answer.text
        if seq in (1, 50, 100):
            sizes.append([len(blob) for blob in _entity(unbounded, manage).rings])
    assert sizes[0] == sizes[1] == sizes[2]
    entity = _entity(unbounded, manage)
    now = T0 + step * 100
    fine, quarter, hourly = (ring.rows(now) for ring in entity.history())
    assert len(fine) == TIERS[0].span // step  # the last 6 hours only
    assert len(quarter) == 34 and len(hourly) == 9  # 100 x 5 min = 8 h 20 min of slots
    assert sum(row.count for row in quarter) == 100
    kinds = Counter(path[0] for path in snapshot(unbounded))
    assert kinds["ClusterHeartbeat"] == 1


def test_one_heartbeat_is_one_heartbeat_write_and_the_same_writes_whatever_the_size(
    unbounded: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: Counter[str] = Counter()
    real = _datastore_api.make_call

    def counting(rpc_name: str, request: Any, *args: Any, **kwargs: Any) -> Any:
        if rpc_name == "commit":
            for mutation in request.mutations:
                change = mutation.upsert or mutation.insert or mutation.update
                path = change.key.path if change else mutation.delete.path
                written[path[0].kind] += 1
        return real(rpc_name, request, *args, **kwargs)

    totals = {}
    for machines in (3, 30, 300):
        _, secret = reporting_install(client)
        written.clear()
        monkeypatch.setattr(_datastore_api, "make_call", counting)
        for seq in range(1, 11):
            answer = post(client, secret, summary(seq, at=T0 + 60 * seq, machines=machines))
            assert answer.status_code == 200, answer.text
        monkeypatch.setattr(_datastore_api, "make_call", real)
        assert written["ClusterHeartbeat"] == 10  # this module's own: one per heartbeat
        totals[machines] = sum(written.values())  # with whatever the summary hooks write
    assert totals[3] == totals[30] == totals[300], totals
