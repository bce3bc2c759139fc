"""A cluster's machines: standing, metadata, overlay subnet, when last heard from."""

from __future__ import annotations

from flask import Blueprint, render_template

from container.panel import connection
from container.services import inventory

bp = Blueprint("machines", __name__)


@bp.get("/clusters/<name>/machines")
def index(name: str) -> str:
    rows = inventory.machine_rows(connection.cluster(name))
    return render_template("machines.html", cluster_name=name, machines=rows)
