"""The panel's audit page: who changed what in the cluster, when, with the diffs.

The same entries `vulcano audit` prints (`container.services.audit`), newest last, from
the container's database in the state directory; ``?unit=`` or ``?machine=`` narrows
them to one target (a template also shows its instances), ``?limit=`` to the latest N.
"""

from __future__ import annotations

import datetime

from flask import Blueprint, abort, render_template, request

from container.panel.settings import provisioning
from container.services.audit import DEFAULT_LIMIT, AuditLog
from container.store import open_store
from vulcano import errors, unitnames

bp = Blueprint("audit", __name__)

MAX_LIMIT = 1000


@bp.get("/audit")
def entries() -> str:
    """The latest changes, filtered as the query asks."""
    limit = _limit(request.args.get("limit", ""))
    unit = request.args.get("unit", "").strip()
    machine = request.args.get("machine", "").strip()
    if unit and machine:
        abort(400, "unit, machine: give one of them, not both")
    target = machine or None
    if unit:
        target = unitnames.mangle(unit)
        try:
            unitnames.parse_name(target)
        except errors.UnitNameError as exc:
            abort(400, f"unit: {exc}")
    log = AuditLog(open_store(provisioning().state_dir))
    return render_template(
        "audit.html",
        entries=log.entries(limit=limit, target=target),
        unit=unit,
        machine=machine,
        limit=limit,
        when=_when,
    )


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _limit(raw: str) -> int:
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        abort(400, f"limit: must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    return int(raw)
