"""Keep secret tokens out of every log line the installer (or its server) writes.

Two secrets appear in request paths: install tokens (43 url-safe base64 characters) and
discovery tokens (32 lowercase hex characters, in etcd discovery URLs). Every other
secret the installer makes has the install tokens' shape (provisioner tokens, the
reporting secret's secret part, its own signing key), so it is redacted alike.
"""

from __future__ import annotations

import logging
import pkgutil
import re

# The shape of an install token (appengine.models.new_token) wherever it stands alone.
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
REDACTED = "<token>"
# The shape of a discovery token (appengine.discovery_models) wherever it stands alone.
_DISCOVERY_TOKEN_RE = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])")
DISCOVERY_REDACTED = "<discovery-token>"

# Loggers that see request paths: werkzeug's and gunicorn's access logs, gunicorn's error
# log, the app's own logger (Flask logs "Exception on /cloud-config/<token>"); and every
# module's logger in the app, which `install` adds by itself: a logger's filters do not
# apply to records its children propagate, hence each module by name.
REQUEST_LOGGERS = (
    "werkzeug",
    "gunicorn.access",
    "gunicorn.error",
    "appengine",
)


def app_loggers() -> tuple[str, ...]:
    """REQUEST_LOGGERS and the logger of each module the app package has."""
    import appengine

    modules = pkgutil.iter_modules(appengine.__path__, prefix="appengine.")
    return (*REQUEST_LOGGERS, *sorted(module.name for module in modules))


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


def install(names: tuple[str, ...] | None = None) -> None:
    """Attach one TokenFilter to each named logger (once, however often it is called).

    By default: every logger of :func:`app_loggers`.
    """
    for name in app_loggers() if names is None else names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenFilter) for f in logger.filters):
            logger.addFilter(TokenFilter())
