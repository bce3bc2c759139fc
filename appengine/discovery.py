"""The discovery service's place in the installer: the API, the install panel, the cron.

The v2 protocol itself lives in `appengine.discovery_api`, its Datastore models in
`appengine.discovery_models`. This blueprint nests the API, lets an install page make a
token tied to the install, shows who registered, and deletes old tokens on cron.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from appengine import alerts_engine, heartbeat_models, limits, policy
from appengine.discovery_api import api, discovery_url
from appengine.discovery_errors import (
    BadSize,
)
from appengine.discovery_models import (
    MAX_SIZE,
    MIN_SIZE,
    DiscoveryMember,
    DiscoveryToken,
    delete_for_install,
    delete_older_than,
    parse_size,
)
from appengine.installs import usable
from appengine.models import Install

log = logging.getLogger(__name__)

bp = Blueprint("discovery", __name__)
bp.register_blueprint(api)


@bp.route("/cron/discovery/cleanup", methods=["GET"])
def cleanup() -> Response:
    """Delete old discovery tokens, expired installs and spent quotas; App Engine cron only."""
    # App Engine strips X-Appengine-Cron from every request that cron did not send.
    if request.headers.get("X-Appengine-Cron") != "true":
        return Response("cron only\n", status=403, mimetype="text/plain")
    max_age = current_app.config.get("DISCOVERY_TOKEN_MAX_AGE", policy.DISCOVERY_TOKEN_MAX_AGE)
    deleted = delete_older_than(timedelta(seconds=float(max_age)))
    expired = Install.expired_keys(policy.DISCOVERY_CLEANUP_BATCH)
    for key in expired:
        deleted += delete_for_install(key)
        heartbeat_models.delete_for_install(key)
        alerts_engine.delete_for_install(key)
        key.delete(timeout=policy.DATASTORE_TIMEOUT)
    quotas = limits.delete_expired_quotas()
    log.info(
        "cleanup deleted %d discovery tokens, %d expired installs, %d quota counters",
        deleted,
        len(expired),
        quotas,
    )
    return Response(
        f"deleted {deleted}\nexpired installs {len(expired)}\nquotas {quotas}\n",
        mimetype="text/plain",
    )


# --- the install page's panel -----------------------------------------------------------


@dataclass(frozen=True)
class PanelMember:
    """A registered member as the install page shows it."""

    member_id: str
    name: str
    peer_urls: tuple[str, ...]
    index: int

    @classmethod
    def of(cls, member: DiscoveryMember) -> PanelMember:
        peers = member.peers()
        names = dict.fromkeys(name for name, _ in peers)
        return cls(
            member.member_id, ", ".join(names), tuple(u for _, u in peers), member.created_index
        )


@dataclass(frozen=True)
class PanelToken:
    """One discovery URL of an install and who registered under it.

    etcd's members take the first `size` registrations (by index) as the cluster; any
    later registration is a member that found the cluster full and became a proxy or
    exited. Members that saw it full before registering leave no trace here.
    """

    url: str
    size: int
    created: datetime
    members: tuple[PanelMember, ...]
    extra: tuple[PanelMember, ...]

    @property
    def complete(self) -> bool:
        return len(self.members) == self.size


def panel_tokens(install: Install, manage_token: str) -> list[PanelToken]:
    """The install's discovery URLs, newest first, with their members."""
    tokens = []
    for token in DiscoveryToken.for_install(install.key):
        registered = [PanelMember.of(m) for m in token.members()]
        tokens.append(
            PanelToken(
                url=discovery_url(token.token_for(manage_token)),
                size=token.size,
                created=token.created,
                members=tuple(registered[: token.size]),
                extra=tuple(registered[token.size :]),
            )
        )
    return tokens


def default_size(install: Install) -> int:
    """An odd etcd size that fits the install's cluster: 1, 3 or 5."""
    nodes = int(install.size or 1)
    return 1 if nodes < 3 else 3 if nodes < 5 else 5


@bp.app_context_processor
def _panel_helpers() -> dict[str, Any]:
    return {
        "discovery_tokens": panel_tokens,
        "discovery_default_size": default_size,
        "discovery_sizes": range(MIN_SIZE, MAX_SIZE + 1),
    }


@bp.post("/installs/<token>/discovery")
def create_for_install(token: str) -> BaseResponse | tuple[str, int]:
    """The install page's button: a discovery URL tied to this install."""
    install = usable(Install.get_by_token(token))
    try:
        size = parse_size(request.form.get("size", ""))
    except BadSize as exc:
        return render_template("error.html", code=400, message=f"size: {exc.cause}"), 400
    DiscoveryToken.create(
        size,
        install=install.key,
        manage_token=token,
        max_per_install=limits.limit("DISCOVERY_TOKENS_PER_INSTALL"),
    )
    log.info("made a discovery token of size %d for an install", size)
    flash(f"New etcd discovery URL for {size} member{'s' if size > 1 else ''}: see below.")
    return redirect(url_for("installs.show", token=token, _anchor="discovery"), code=303)
