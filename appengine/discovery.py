"""The discovery service's place in the installer: the API, the install panel, the cron.

The v2 protocol itself lives in `appengine.discovery_api`, its Datastore models in
`appengine.discovery_models`. This blueprint nests the API, lets an install page make a
token tied to the install, shows who registered, and deletes old tokens on cron.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from appengine import policy
from appengine.discovery_api import api
from appengine.discovery_models import delete_older_than

log = logging.getLogger(__name__)

bp = Blueprint("discovery", __name__)
bp.register_blueprint(api)

# A discovery token wherever it stands alone in a log line (a request path, say).
_TOKEN_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])")
_REDACTED = "<discovery-token>"
# Loggers that see request paths, as appengine.redact lists them, plus this package's.
_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error", "appengine")


class _TokenFilter(logging.Filter):
    """Rewrite each record with discovery tokens replaced: they are secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN_IN_TEXT.search(message):
            record.msg = _TOKEN_IN_TEXT.sub(_REDACTED, message)
            record.args = None
        return True


@bp.record_once
def _redact_tokens(state: BlueprintSetupState) -> None:
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _TokenFilter) for f in logger.filters):
            logger.addFilter(_TokenFilter())


@bp.route("/cron/discovery/cleanup", methods=["GET"])
def cleanup() -> Response:
    """Delete tokens older than DISCOVERY_TOKEN_MAX_AGE seconds; App Engine cron only."""
    # App Engine strips X-Appengine-Cron from every request that cron did not send.
    if request.headers.get("X-Appengine-Cron") != "true":
        return Response("cron only\n", status=403, mimetype="text/plain")
    max_age = current_app.config.get("DISCOVERY_TOKEN_MAX_AGE", policy.DISCOVERY_TOKEN_MAX_AGE)
    deleted = delete_older_than(timedelta(seconds=float(max_age)))
    log.info("discovery cleanup deleted %d tokens", deleted)
    return Response(f"deleted {deleted}\n", mimetype="text/plain")
