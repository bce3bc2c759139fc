"""Keep secret tokens out of every log line the installer (or its server) writes.

Two secrets appear in request paths: install tokens (43 url-safe base64 characters) and
discovery tokens (32 lowercase hex characters, in etcd discovery URLs).
"""

from __future__ import annotations

import logging
import re

# The shape of an install token (appengine.models.new_token) wherever it stands alone.
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
REDACTED = "<token>"
# The shape of a discovery token (appengine.discovery_models) wherever it stands alone.
_DISCOVERY_TOKEN_RE = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])")
DISCOVERY_REDACTED = "<discovery-token>"

# Loggers that see request paths: werkzeug's and gunicorn's access logs, gunicorn's error
# log, the app's own logger (Flask logs "Exception on /cloud-config/<token>") and the
# views' loggers. A logger's filters do not apply to records its children propagate,
# hence each module by name.
REQUEST_LOGGERS = (
    "werkzeug",
    "gunicorn.access",
    "gunicorn.error",
    "appengine",
    "appengine.installs",
    "appengine.models",
    "appengine.discovery",
    "appengine.discovery_api",
    "appengine.discovery_models",
    "appengine.discovery_watch",
    "appengine.heartbeat_api",
    "appengine.heartbeat_models",
    "appengine.reporting",
    "appengine.status",
)


def redact(text: str) -> str:
    """``text`` with anything shaped like an install or discovery token replaced."""
    return _DISCOVERY_TOKEN_RE.sub(DISCOVERY_REDACTED, _TOKEN_RE.sub(REDACTED, text))


class TokenFilter(logging.Filter):
    """A logging filter that rewrites each record with its tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install(names: tuple[str, ...] = REQUEST_LOGGERS) -> None:
    """Attach one TokenFilter to each named logger (once, however often it is called)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenFilter) for f in logger.filters):
            logger.addFilter(TokenFilter())
