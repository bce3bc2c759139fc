"""The clusters pages: the list, the create form, one cluster, its nodes' user-data.

Creating a cluster and rendering node user-data are the clusters service's
(`clusters.create`, `nodes.user_data`, `jointokens.issue`, `installer.Installer`).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from container.panel import connection
from container.panel.auth import current_actor
from container.panel.connection import BadField
from container.panel.settings import provisioning
from container.services import clusters, jointokens, machines, nodes
from container.services.errors import (
    ClusterInputError,
    ClusterNotFound,
    ClusterUnavailable,
    InstallerError,
    SettingsError,
)
from container.services.installer import Installer
from vulcano import nodeconfig

bp = Blueprint("clusters", __name__)

# The clusters service names fields as the CLI's flags; the form's names for them.
_FORM_FIELDS = {
    "NAME": "name",
    "--size": "size",
    "--flavour": "flavour",
    "--network": "network",
    "--ip": "tls",  # a TLS member enrols at boot with this panel, which must serve HTTPS
}


@bp.get("/")
@bp.get("/clusters")
def index() -> str:
    """Every cluster this container manages, and the form to create one."""
    return render_template(
        "clusters.html",
        settings=provisioning(),
        clusters=clusters.list_clusters(connection.store()),
        flavours=sorted(nodeconfig.FLAVOURS),
        default_network=clusters.DEFAULT_NETWORK,
        default_flavour=clusters.DEFAULT_FLAVOUR,
    )


def cluster_form(form: Any) -> dict[str, Any]:
    """The create form's fields, checked by the clusters service as the CLI's flags are."""
    raw_size = form.get("size", "").strip()
    try:
        size = int(raw_size, 10)
    except ValueError:
        raise BadField("size", "a whole number") from None
    fields = {
        "name": form.get("name", "").strip(),
        "size": size,
        "flavour": form.get("flavour", clusters.DEFAULT_FLAVOUR),
        "network": form.get("network", "").strip() or clusters.DEFAULT_NETWORK,
        # a checkbox: sent (checked by default) or absent
        "tls": form.get("tls", "") == "on",
    }
    try:
        clusters.check_fields(fields["name"], size, fields["flavour"], fields["network"])
    except ClusterInputError as exc:
        raise BadField(_FORM_FIELDS.get(exc.field, "name"), exc.message) from None
    return fields


@bp.post("/clusters")
def create() -> Response:
    """Create a cluster from the form: a discovery URL from the installer, its user-data."""
    fields = cluster_form(request.form)
    store = connection.store()
    try:
        clusters.get_cluster(store, fields["name"])
    except ClusterNotFound:
        pass
    else:
        raise BadField("name", f"a cluster named {fields['name']!r} exists already")
    try:
        installer = Installer.configured(provisioning().state_dir)
    except SettingsError as exc:
        abort(503, f"no hosted installer to ask for a discovery URL: {exc}")
    try:
        clusters.create(
            store,
            fields["name"],
            fields["size"],
            fields["flavour"],
            fields["network"],
            installer=installer,
            tls=fields["tls"],
        )
    except ConnectionError as exc:  # the installer did not answer, or refused
        abort(502, str(exc))
    except ValueError as exc:  # the service's own checks, each naming its field
        field = _FORM_FIELDS.get(getattr(exc, "field", ""), "name")
        raise BadField(field, getattr(exc, "message", str(exc))) from None
    flash(f"Cluster {fields['name']} created by {current_actor()}.")
    return redirect(url_for("clusters.show", name=fields["name"]))


@bp.post("/alerts/test")
def test_alert() -> Response:
    """Ask the hosted installer for a test alert to the install's e-mail and webhooks."""
    try:
        installer = Installer.configured(provisioning().state_dir)
    except SettingsError as exc:
        abort(503, f"no hosted installer to ask for a test alert: {exc}")
    try:
        sent, failed = installer.send_test_alert()
    except InstallerError as exc:
        abort(502, str(exc))
    if not sent and not failed:
        flash("Test alert: the install has no e-mail address or webhook set on its page.")
    else:
        flash(f"Test alert: {sent} delivered, {failed} failed.")
    return redirect(url_for("clusters.index"))


@bp.get("/clusters/<name>")
def show(name: str) -> str:
    """One cluster: its settings, and how many machines it has now."""
    record = _record(name)
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
    """Every node's user-data, ready to paste."""
    return _user_data_page(name, token="", expires=0.0)


@bp.post("/clusters/<name>/join-url")
def join_url(name: str) -> str:
    """A new join token (the old one stops working), shown once as each node's #include URL."""
    record = _record(name)
    token, expires = jointokens.issue(connection.store(), record.name)
    flash(f"New join URL for {record.name} made by {current_actor()}; the old one is void.")
    return _user_data_page(name, token=token, expires=expires)


def _record(name: str) -> Any:
    try:
        return clusters.get_cluster(connection.store(), name)
    except ClusterNotFound as exc:
        abort(404, str(exc))


def _user_data_page(name: str, token: str, expires: float) -> str:
    record = _record(name)
    base = (os.environ.get(jointokens.PANEL_URL_VAR) or request.host_url).rstrip("/")
    documents = []
    for node in range(1, record.size + 1):
        document = nodes.user_data(connection.store(), name, node)
        include = f"{base}/join/{name}/{node}?token={token}" if token else ""
        documents.append({"node": node, "text": document.text, "include": include})
    return render_template(
        "user_data.html",
        cluster_name=name,
        cluster=record,
        nodes=documents,
        expires=expires,
    )
