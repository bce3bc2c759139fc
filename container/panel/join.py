"""``GET /join/<cluster>/<node>?token=…``: a node's user-data, for cloud-init's ``#include``.

Reachable without logging in to the panel — the node has no session, only the cluster's
join token (`container.services.jointokens`) in the URL. A wrong, revoked or expired
token, or an unknown cluster, is a 403 and serves nothing; a node the cluster does not
have is a 404; an agent-only node asked for before the etcd members came up is a 409
(its user-data needs their addresses). The answer is never cached.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from container.services import jointokens, nodes
from container.services.errors import (
    ClusterInputError,
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
        jointokens.check(store, cluster, request.args.get("token", ""))
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
