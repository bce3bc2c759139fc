"""The audit log: every change made through the CLI or the panel, who, when, and the
unit file's diff (the audit service's entries, latest last)."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from container.panel import connection
from container.panel.connection import BadField
from container.services.audit import AuditLog

bp = Blueprint("audit", __name__)

DEFAULT_LIMIT = 200
MAX_LIMIT = 5000


@bp.get("/audit")
def index() -> str:
    """The latest entries; ``?unit=`` only one unit's (a template's shows its instances)."""
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw, 10)
    except ValueError:
        raise BadField("limit", "a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadField("limit", f"between 1 and {MAX_LIMIT}")
    unit = request.args.get("unit", "").strip() or None
    entries = AuditLog(connection.store()).entries(limit=limit, target=unit)
    return render_template("audit.html", entries=list(reversed(entries)), unit=unit or "")
