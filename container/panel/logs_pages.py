"""A unit's output; for a template (``web@.service`` or ``web@*``) every instance's.

The runners publish each unit's last lines without timestamps, so instances are shown
grouped, one after another by name, not interleaved.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template, request

from container.panel import connection
from container.panel.connection import BadField
from container.services import journal, listings
from vulcano import unitnames
from vulcano.errors import UnitNameError

bp = Blueprint("logs", __name__)

DEFAULT_LINES = 50
MAX_LINES = 1000


@dataclass(frozen=True)
class InstanceLog:
    unit: str
    lines: list[str]
    printed: int  # how many lines it has printed in all


def _template_of(asked: str) -> str | None:
    """The template a ``name@*`` or ``name@.service`` asks for; None for one unit."""
    if asked.endswith("@*"):
        asked = asked[:-1] + ".service"
    elif "@*." in asked:
        asked = asked.replace("@*.", "@.", 1)
    return asked if unitnames.is_template(asked) else None


def _lines() -> int:
    raw = request.args.get("lines", str(DEFAULT_LINES))
    try:
        lines = int(raw, 10)
    except ValueError:
        raise BadField("lines", "a whole number") from None
    if not 1 <= lines <= MAX_LINES:
        raise BadField("lines", f"between 1 and {MAX_LINES}")
    return lines


@bp.get("/clusters/<name>/units/<unit>/log")
def show(name: str, unit: str) -> str:
    lines = _lines()
    cluster = connection.cluster(name)
    template = _template_of(unit)
    if template is None:
        try:
            units = [unitnames.parse_name(unitnames.mangle(unit)).name]
        except UnitNameError as exc:
            raise BadField("unit", str(exc)) from None
    else:
        units = sorted(
            f.spec.name
            for f in listings.list_unit_files(cluster)
            if unitnames.parse_name(f.spec.name).template == template
        )
    logs = []
    for each in units:
        tail = journal.read_journal(cluster, each, lines)
        logs.append(InstanceLog(each, tail.lines, tail.seq))
    return render_template(
        "log.html", cluster_name=name, asked=unit, template=template, logs=logs, lines=lines
    )
