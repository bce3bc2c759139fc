"""Heartbeat test helpers: installs that can report, summaries, and Datastore snapshots."""

from __future__ import annotations

import time
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient
from google.cloud import datastore
from werkzeug.test import TestResponse

from appengine.models import read_token
from tests.appengine.test_installs import create
from vulcano import cloudconfig
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary, UnitSummary


def reporting_install(client: FlaskClient, **changes: str) -> tuple[str, str]:
    """A cloud-init install made with the form: its manage token and its reporting secret,
    read from the document its permalink serves (as the provisioning machine gets it)."""
    manage = create(client, **changes)
    served = client.get(f"/cloud-config/{read_token(manage)}").text
    files = {f["path"]: f["content"] for f in yaml.safe_load(served)["write_files"]}
    return manage, files[cloudconfig.REPORT_TOKEN_HOST_PATH]


def machine(n: int, health: MachineHealth = MachineHealth.UP, **fields: Any) -> MachineSummary:
    values: dict[str, Any] = dict(
        machine_id=f"m{n:04d}" + "0" * 28,
        health=health,
        last_seen=time.time() - 5,
        hostname=f"node-{n}",
        public_ip=f"10.0.{n // 250}.{n % 250 + 1}",
        load1=0.5 + n % 3,
        cpu_percent=10.0 + n % 50,
        mem_percent=40.0,
        disk_percent=20.0,
    )
    values.update(fields)
    return MachineSummary(**values)


def summary(
    seq: int,
    at: float | None = None,
    machines: int | list[MachineSummary] = 3,
    units: list[UnitSummary] | None = None,
    interval: float = 60.0,
    cluster: str = "prod",
) -> ClusterSummary:
    listed = [machine(i) for i in range(machines)] if isinstance(machines, int) else machines
    if units is None:
        units = [
            UnitSummary(f"web@{i}.service", listed[i % len(listed)].machine_id, "active", "running")
            for i in range(len(listed))
        ]
    return ClusterSummary(
        cluster=cluster,
        seq=seq,
        at=time.time() if at is None else at,
        interval=interval,
        machines=listed,
        units=units,
    )


def post(
    client: FlaskClient, secret: str, body: ClusterSummary | bytes | str, **kwargs: Any
) -> TestResponse:
    data = body.to_json() if isinstance(body, ClusterSummary) else body
    headers = {"Authorization": f"Bearer {secret}", **kwargs.pop("headers", {})}
    return client.post(
        "/api/heartbeat", data=data, headers=headers, content_type="application/json", **kwargs
    )


def snapshot(app: Flask) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every entity in the emulator, by key path: to prove a refusal wrote nothing."""
    client = datastore.Client(project=app.config["DATASTORE_PROJECT"])  # the emulator's
    return {tuple(e.key.flat_path): dict(e) for e in client.query().fetch()}
