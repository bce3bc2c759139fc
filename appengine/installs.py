"""Install pages: the form, the generated document, the permalink."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("installs", __name__)
