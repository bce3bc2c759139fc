"""``GET /join/<cluster>/<node>?token=…``: a node's user-data, for cloud-init's ``#include``.

Reachable without logging in to the panel — the node has no session, only the cluster's
join token (`container.services.jointokens`) in the URL. A wrong, revoked or expired
token, or an unknown cluster, is a 403 and serves nothing, as is a node whose user-data
the token served already to another address (`jointokens.claim_node`); a node the
cluster does not have is a 404; an agent-only node asked for before the etcd members
came up is a 409 (its user-data needs their addresses). The answer is never cached.

``POST /join/<cluster>/<node>/certificate?address=…``: a TLS member whose address was
found at boot enrols (`container.services.enrolment`): the body is a CSR (PEM) of a key
it made, ``Authorization: Bearer`` its enrolment token. The answer is its certificate
(PEM); a wrong, used or expired token is a 403, a bad CSR or address a 400, each saying
why. Each certificate signed is in the audit log (serial, node, address; never the
token).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from container.services import enrolment, jointokens, nodes
from container.services.audit import Actor, AuditLog
from container.services.errors import (
    ClusterInputError,
    EnrolmentError,
    InstallerError,
    JoinTokenError,
    NodeNotReady,
)
from container.store import Store, open_store

bp = Blueprint("join", __name__)


def _store() -> Store:
    store = current_app.extensions.get("vulcano.store")
    if store is None:
        store = open_store(current_app.config["PROVISIONING"].state_dir)
        current_app.extensions["vulcano.store"] = store
    assert isinstance(store, Store)
    return store


def _refused(message: str, status: int) -> Response:
    response = Response(f"{message}\n", status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/join/<cluster>/<int:node>")
def user_data(cluster: str, node: int) -> Response:
    """Node ``node``'s user-data, when ``?token=`` is the cluster's live join token."""
    store = _store()
    try:
        token = request.args.get("token", "")
        record = jointokens.check(store, cluster, token)
        if 1 <= node <= record.size:
            jointokens.claim_node(store, cluster, token, node, request.remote_addr or "")
        document = nodes.user_data(store, cluster, node)
    except JoinTokenError as exc:
        return _refused(f"token: {exc}", 403)
    except ClusterInputError as exc:
        return _refused(f"node: {exc.message}", 404)
    except (NodeNotReady, InstallerError) as exc:
        return _refused(f"node: {exc}", 409)
    response = Response(document.text, content_type=document.content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/join/<cluster>/<int:node>/certificate")
def certificate(cluster: str, node: int) -> Response:
    """Node ``node``'s certificate for the CSR in the body, when its token is live."""
    store = _store()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _refused("token: give the enrolment token as Authorization: Bearer", 403)
    try:
        enrolled = enrolment.sign(
            store,
            cluster,
            node,
            token.strip(),
            request.stream.read(enrolment.MAX_CSR_BYTES + 1),  # no more, whatever is sent
            request.args.get("address", ""),
        )
    except EnrolmentError as exc:
        return _refused(str(exc), exc.status)
    AuditLog(store).record(
        Actor(f"node {enrolled.node_name}@{request.remote_addr or '-'}", "join"),
        "certificate-enrol",
        enrolled.node_name,
        cluster=cluster,
        detail=f"serial {enrolled.serial}, address {enrolled.address}",
    )
    response = Response(enrolled.cert_pem, mimetype="application/x-pem-file")
    response.headers["Cache-Control"] = "no-store"
    return response
