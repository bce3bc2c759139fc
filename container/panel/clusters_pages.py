"""The clusters pages: the list, the create form, one cluster, its nodes' user-data."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from container.panel import connection
from container.panel.auth import current_actor
from container.panel.connection import BadField
from container.panel.settings import provisioning
from container.services import clusters, machines
from container.services.errors import ClusterNotFound, ClusterUnavailable
from vulcano import cloudconfig, network

bp = Blueprint("clusters", __name__)

DEFAULT_NETWORK = "10.244.0.0/16"
DEFAULT_FLAVOUR = "cloud-init"


@bp.get("/")
@bp.get("/clusters")
def index() -> str:
    """Every cluster this container manages, and the form to create one."""
    return render_template(
        "clusters.html",
        settings=provisioning(),
        clusters=clusters.list_clusters(connection.store()),
        flavours=cloudconfig.FLAVOURS,
        default_network=DEFAULT_NETWORK,
        default_flavour=DEFAULT_FLAVOUR,
    )


def cluster_form(form: Any) -> dict[str, Any]:
    """The create form's fields, checked as the installer checks its answers."""
    try:
        name = cloudconfig.check_cluster_name(form.get("name", "").strip())
    except cloudconfig.InputError as exc:
        raise BadField("name", exc.message) from None
    raw_size = form.get("size", "").strip()
    try:
        size = cloudconfig.check_size(int(raw_size, 10))
    except ValueError as exc:
        message = exc.message if isinstance(exc, cloudconfig.InputError) else "a whole number"
        raise BadField("size", message) from None
    flavour = form.get("flavour", DEFAULT_FLAVOUR)
    try:
        cloudconfig.check_flavour(flavour)
    except cloudconfig.InputError as exc:
        raise BadField("flavour", exc.message) from None
    cidr = form.get("network", "").strip() or DEFAULT_NETWORK
    try:
        network.parse({"network": cidr})
    except network.NetworkConfigError as exc:
        raise BadField("network", str(exc).removeprefix("network: ")) from None
    return {"name": name, "size": size, "flavour": flavour, "network": cidr}


@bp.post("/clusters")
def create() -> Response:
    """Create a cluster from the form (clusters.create makes its discovery and user-data)."""
    fields = cluster_form(request.form)
    store = connection.store()
    try:
        clusters.get_cluster(store, fields["name"])
    except ClusterNotFound:
        pass
    else:
        raise BadField("name", f"a cluster named {fields['name']!r} exists already")
    make = getattr(clusters, "create", None)
    if make is None:
        abort(501, "creating clusters is not available in this build yet")
    try:
        make(store, **fields)
    except ValueError as exc:  # the service layer's own checks (each names its field)
        raise BadField(getattr(exc, "field", "name"), getattr(exc, "message", str(exc))) from None
    flash(f"Cluster {fields['name']} created by {current_actor()}.")
    return redirect(url_for("clusters.show", name=fields["name"]))


@bp.get("/clusters/<name>")
def show(name: str) -> str:
    """One cluster: its settings, and how many machines it has now."""
    try:
        record = clusters.get_cluster(connection.store(), name)
    except ClusterNotFound as exc:
        abort(404, str(exc))
    found: int | None = None
    problem = ""
    if record.endpoints:
        try:
            found = len(machines.list_machines(connection.cluster(name)))
        except ClusterUnavailable as exc:
            problem = str(exc)
    else:
        problem = "no etcd endpoints yet: none of its members has come up"
    return render_template(
        "cluster.html",
        cluster_name=name,
        cluster=record,
        machine_count=found,
        problem=problem,
    )


@bp.get("/clusters/<name>/user-data")
def user_data(name: str) -> str:
    """Every node's user-data, ready to paste, and the URL a node can #include instead."""
    try:
        record = clusters.get_cluster(connection.store(), name)
    except ClusterNotFound as exc:
        abort(404, str(exc))
    render = getattr(clusters, "user_data", None)
    nodes: list[dict[str, Any]] = []
    if render is not None:
        for node in range(record.size):
            document = render(connection.store(), name, node)
            nodes.append({"node": node, "text": _text(document), "include": _include(document)})
    return render_template(
        "user_data.html",
        cluster_name=name,
        cluster=record,
        nodes=nodes,
        available=render is not None,
    )


def _text(document: Any) -> str:
    return document if isinstance(document, str) else str(getattr(document, "text", document))


def _include(document: Any) -> str:
    """The #include URL, when the service layer gives one with the document."""
    return str(getattr(document, "include_url", "") or "")
