"""The health endpoint: what a supervisor or a load balancer asks the container."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from flask import Blueprint, jsonify

from container.panel.settings import provisioning
from container.services.provisioning import state_dir_writable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 with the cluster's name while the state directory is writable; 503 when not."""
    settings = provisioning()
    writable = state_dir_writable(settings.state_dir)
    body = {
        "status": "ok" if writable else "failing",
        "cluster_name": settings.cluster_name,
        "cluster_size": settings.cluster_size,
        "state_dir_writable": writable,
        "version": metadata.version("vulcano"),
    }
    return jsonify(body), 200 if writable else 503
