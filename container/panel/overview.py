"""The panel's front page: which cluster this provisioning machine is for."""

from __future__ import annotations

from importlib import metadata

from flask import Blueprint, render_template

from container.panel.settings import provisioning

bp = Blueprint("overview", __name__)


@bp.get("/")
def index() -> str:
    """The provisioning settings the installer's user-data passed."""
    return render_template(
        "overview.html", settings=provisioning(), version=metadata.version("vulcano")
    )
