"""The heartbeat API: `POST /api/heartbeat`, a cluster summary from a provisioning container.

``Authorization: Bearer <reporting secret>`` (appengine.reporting) names the install; the
body is one `vulcano.heartbeat.ClusterSummary` as JSON. The answer is 200
``{"seq": N, "stored": true}`` only once the Datastore transaction committed, so the
container may drop the summary from its outbox then and not before. Every refusal
stores nothing and says why in JSON ``{"error", "field", "message"}``:

- 401 the secret names no live install (which part was wrong is not said);
- 413 the body is past `MAX_SUMMARY_BYTES` (Content-Length, or the body read with a cap),
  or the summary lists too many machines or units;
- 400 the summary does not parse; ``field`` names the first part that is wrong;
- 409 ``seq`` is not after the last stored one (a replay); ``last_seq`` says which is
  (a sender whose 200 got lost learns here that its summary was stored);
- 429 more than the install's heartbeats per minute (Retry-After);
- 500 the write failed: nothing was stored, send it again.

After each stored summary the app's summary hooks run (`SUMMARY_HOOKS`, e.g. alerts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from appengine import csrf, heartbeat_models, limits, reporting
from appengine.models import Install
from vulcano.heartbeat import MAX_SUMMARY_BYTES, ClusterSummary, HeartbeatError, SummaryTooLarge

log = logging.getLogger(__name__)

bp = Blueprint("heartbeat_api", __name__)

# app.extensions key of the callables run after each stored summary, in order, as
# hook(install, previous, current); previous is None for an install's first summary.
SUMMARY_HOOKS = "vulcano.summary_hooks"
SummaryHook = Callable[[Install, ClusterSummary | None, ClusterSummary], None]
_TOO_LARGE = f"a heartbeat body may hold at most {MAX_SUMMARY_BYTES} bytes"
_UNAUTHORIZED = "Authorization: no live install has this reporting secret"


class _Refusal(Exception):
    """A refusal on its way to its JSON answer."""

    def __init__(self, status: int, error: str, field: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message
        self.extra = extra


def _json(body: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(body) + "\n", status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(_Refusal)
def _refused(exc: _Refusal) -> Response:
    body = {"error": exc.error, "field": exc.field, "message": exc.message, **exc.extra}
    response = _json(body, exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="vulcano heartbeat"'
    if exc.status == 405:
        response.headers["Allow"] = "POST"
    if "retry_after" in exc.extra:
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    if exc.code == 413:  # the body past the app's MAX_CONTENT_LENGTH while being read
        return _refused(_Refusal(413, "too_large", "body", _TOO_LARGE))
    if exc.code == 405:
        return _refused(_Refusal(405, "method", "method", f"{request.method}: only POST"))
    return _refused(_Refusal(exc.code or 400, "refused", "request", exc.description or ""))


@bp.errorhandler(Exception)
def _failed(exc: Exception) -> Response:
    log.error("heartbeat failed: %s", type(exc).__name__, exc_info=exc)
    body = {"stored": False, "error": "internal", "message": "not stored; send it again"}
    return _json(body, 500)


@bp.route("/api/heartbeat", methods=["GET", "PUT", "POST", "PATCH", "DELETE"])
def heartbeat() -> Response:
    """Store one cluster summary for the install the bearer's secret names."""
    if request.method != "POST":
        raise _Refusal(405, "method", "method", f"{request.method}: only POST")
    if request.content_length is not None and request.content_length > MAX_SUMMARY_BYTES:
        raise _Refusal(413, "too_large", "body", _TOO_LARGE)
    install = reporting.install_for(_bearer())
    if install is None:
        raise _Refusal(401, "unauthorized", "Authorization", _UNAUTHORIZED)
    raw = request.stream.read(MAX_SUMMARY_BYTES + 1)
    if len(raw) > MAX_SUMMARY_BYTES:
        raise _Refusal(413, "too_large", "body", _TOO_LARGE)
    try:
        summary = ClusterSummary.from_json(raw)
    except SummaryTooLarge as exc:
        raise _Refusal(413, "too_large", exc.field, exc.message) from None
    except HeartbeatError as exc:
        raise _Refusal(400, "invalid", exc.field, str(exc)) from None
    try:
        stored = heartbeat_models.store(
            install.key, summary, limits.limit("HEARTBEATS_PER_INSTALL_PER_MINUTE"), raw
        )
    except heartbeat_models.Replayed as exc:
        raise _Refusal(409, "replayed", "seq", str(exc), last_seq=exc.last_seq) from None
    except heartbeat_models.TooFrequent as exc:
        raise _Refusal(429, "rate", "heartbeats", str(exc), retry_after=exc.retry_after) from None
    _after_stored(install, stored)
    return _json({"seq": summary.seq, "stored": True}, 200)


def _bearer() -> str:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def _after_stored(install: Install, stored: heartbeat_models.Stored) -> None:
    """Run the summary hooks; one that fails is logged, the summary stays stored."""
    hooks: list[SummaryHook] = current_app.extensions.get(SUMMARY_HOOKS, [])
    for hook in hooks:
        try:
            hook(install, stored.previous, stored.current)
        except Exception as exc:  # the heartbeat is stored: the reporter must hear 200
            log.error("summary hook %s failed: %s", hook, type(exc).__name__, exc_info=exc)


# The bearer secret is the credential; there is no cookie to forge a request with.
csrf.exempt(heartbeat)


def init_app(app: Flask) -> None:
    """Serve the API and give the app its (empty) list of summary hooks."""
    app.extensions.setdefault(SUMMARY_HOOKS, [])
    app.register_blueprint(bp)
