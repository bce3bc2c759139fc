"""Install pages: the form, the generated document, the permalink."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("installs", __name__)


@bp.get("/")
def index() -> str:
    """The form that turns a few answers into user-data."""
    return render_template("index.html")
