"""A cluster's units: their states and why one cannot be placed; start, stop, destroy,
instances of a template, and uploading a unit file. Every change is a form POST
(CSRF-protected) that redirects back to the list; the panel does not wait for the
cluster (the list shows where each unit stands)."""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from container.panel import connection
from container.panel.auth import current_actor
from container.panel.connection import BadField
from container.services import listings, sources, units, waiting
from container.services import status as statuses
from vulcano import unitnames
from vulcano.errors import UnitNameError
from vulcano.records import DesiredState, UnitSource

bp = Blueprint("units", __name__)

ACTIONS = ("start", "stop", "destroy")
# Instance names as the form takes them: separated by commas or spaces.
_SEPARATORS = re.compile(r"[\s,]+")
MAX_INSTANCES = 100


@bp.get("/clusters/<name>/units")
def index(name: str) -> str:
    """Unit files with their desired and current state, and every machine's report."""
    cluster = connection.cluster(name)
    files = listings.list_unit_files(cluster)
    on_machines = listings.list_units(cluster)
    stuck = [
        f.spec.name
        for f in files
        if f.spec.desired == DesiredState.LAUNCHED and not unitnames.is_template(f.spec.name)
    ]
    why = {
        unit: s.note
        for unit, s in waiting.standings(cluster, stuck, DesiredState.LAUNCHED).items()
        if not s.reached
    }
    return render_template(
        "units.html",
        cluster_name=name,
        files=files,
        on_machines=on_machines,
        why=why,
        is_template=unitnames.is_template,
    )


@bp.get("/clusters/<name>/units/<unit>")
def show(name: str, unit: str) -> str:
    """One unit: its file, where each machine has it, and its last lines of output."""
    unit = _unit_name(unit)
    cluster = connection.cluster(name)
    [found] = list(statuses.unit_statuses(cluster, [unit], lines=20))
    return render_template(
        "unit.html",
        cluster_name=name,
        unit=found,
        text=units.unit_file(cluster, unit),
        is_template=unitnames.is_template(unit),
    )


def _unit_name(raw: str, field: str = "unit") -> str:
    if not raw.strip():
        raise BadField(field, "give a unit name")
    try:
        name = unitnames.mangle(raw.strip())
        unitnames.parse_name(name)
    except UnitNameError as exc:
        raise BadField(field, str(exc)) from None
    return name


@bp.post("/clusters/<name>/units/action")
def action(name: str) -> Response:
    """Start, stop or destroy one unit (a template's instances are started by name)."""
    verb = request.form.get("action", "")
    if verb not in ACTIONS:
        raise BadField("action", f"choose one of {', '.join(ACTIONS)}")
    unit = _unit_name(request.form.get("unit", ""))
    cluster = connection.cluster(name)
    if verb == "start":
        units.start(cluster, [UnitSource(unit)])
    elif verb == "stop":
        units.stop(cluster, [unit])
    else:
        units.destroy(cluster, [unit])
    flash(f"{verb} {unit}: asked by {current_actor()}.")
    return redirect(url_for("units.index", name=name))


@bp.post("/clusters/<name>/units/instances")
def instances(name: str) -> Response:
    """Start instances of a submitted template: ``web@.service`` with ``1 2 3``."""
    template = _unit_name(request.form.get("template", ""), "template")
    if not unitnames.is_template(template):
        raise BadField("template", f"{template} is not a template (name it like web@.service)")
    given = [i for i in _SEPARATORS.split(request.form.get("instances", "")) if i]
    if not given:
        raise BadField("instances", "give one or more instance names, such as 1 2 3")
    if len(given) > MAX_INSTANCES:
        raise BadField("instances", f"at most {MAX_INSTANCES} at once")
    parsed = unitnames.parse_name(template)
    names = []
    for instance in given:
        try:
            names.append(parsed.instantiate(instance))
        except UnitNameError as exc:
            raise BadField("instances", str(exc)) from None
    units.start(connection.cluster(name), [UnitSource(n) for n in names])
    flash(f"start {', '.join(names)}: asked by {current_actor()}.")
    return redirect(url_for("units.index", name=name))


@bp.post("/clusters/<name>/units/upload")
def upload(name: str) -> Response:
    """Submit an uploaded unit file, and start it when asked (a template is only submitted)."""
    upload = request.files.get("unit_file")
    if upload is None or not upload.filename:
        raise BadField("unit_file", "choose a unit file to upload")
    filename = upload.filename.rsplit("/", 1)[-1]
    source = sources.from_bytes(unitnames.mangle(filename), upload.read())
    replace = request.form.get("replace") == "on"
    cluster = connection.cluster(name)
    if request.form.get("start") == "on" and not unitnames.is_template(source.name):
        units.start(cluster, [source], replace=replace)
        verb = "submit and start"
    else:
        units.submit(cluster, [source], replace=replace)
        verb = "submit"
    flash(f"{verb} {source.name}: asked by {current_actor()}.")
    return redirect(url_for("units.index", name=name))
