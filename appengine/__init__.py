"""The hosted installer: a Flask app on App Engine that remembers installs in Datastore."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from vulcano.cloudconfig import InvalidDocument

log = logging.getLogger(__name__)

csrf = CSRFProtect()

# The largest request body accepted; the form's own limits are tighter, per field.
MAX_REQUEST_BYTES = 256 * 1024


_VALIDATE_MODES: dict[str, bool | str] = {"auto": "auto", "required": True, "off": False}


class ConfigError(RuntimeError):
    """The app cannot start as configured; the message says what to set."""


def _validate_mode(name: str) -> bool | str:
    try:
        return _VALIDATE_MODES[name]
    except KeyError:
        raise ConfigError(
            f"VULCANO_VALIDATE_WITH_TOOLS={name!r}: use one of {', '.join(_VALIDATE_MODES)}"
        ) from None


def _on_app_engine() -> bool:
    return os.environ.get("GAE_ENV", "").startswith("standard")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the installer app."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("VULCANO_SECRET_KEY"),
        DATASTORE_PROJECT=os.environ.get("DATASTORE_PROJECT_ID")
        or os.environ.get("GOOGLE_CLOUD_PROJECT"),
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # CSRF tokens live as long as the session: a form left open for hours still works.
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_on_app_engine(),
        # "auto": run cloud-init / ignition-validate when installed; True: they must be.
        VALIDATE_WITH_TOOLS=_validate_mode(os.environ.get("VULCANO_VALIDATE_WITH_TOOLS", "auto")),
        # Set by the demo: the Datastore is an emulator in memory, and the pages say so.
        EPHEMERAL=bool(os.environ.get("VULCANO_EPHEMERAL")),
    )
    from appengine import alert_delivery, images, limits

    app.config.from_mapping(limits.from_environment())
    app.config.from_mapping(images.from_environment())
    app.config.from_mapping(alert_delivery.from_environment())
    if os.environ.get("VULCANO_DISCOVERY_WATCH_TIMEOUT"):
        app.config["DISCOVERY_WATCH_TIMEOUT"] = float(os.environ["VULCANO_DISCOVERY_WATCH_TIMEOUT"])
    if test_config is not None:
        app.config.from_mapping(test_config)
    try:
        images.check(app.config)
    except images.BadDigest as exc:
        raise ConfigError(str(exc)) from None
    if app.config.get("TRUSTED_HOSTS_LIST") is None:
        from appengine.headers import trusted_hosts_from_environment

        app.config["TRUSTED_HOSTS_LIST"] = trusted_hosts_from_environment(_on_app_engine())
    if not app.config["TRUSTED_HOSTS_LIST"]:
        raise ConfigError(
            "set VULCANO_TRUSTED_HOSTS (comma-separated, e.g. vulcano.example,"
            "my-project.uc.r.appspot.com): absolute URLs name only these hosts"
        )

    from appengine import db, discovery, headers, heartbeat_api, installs, redact, status

    redact.install()
    if _on_app_engine():
        # App Engine's front end terminates TLS: trust its X-Forwarded-Proto, one hop.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    headers.init_app(app)  # first: the host is checked before CSRF or any view
    csrf.init_app(app)
    from appengine import alerts, panel_report

    alerts.init_app(app)
    panel_report.init_app(app)
    client = db.init_app(app)
    if not app.config.get("SECRET_KEY"):
        # None configured: the installer's own, made once and kept in Datastore.
        from appengine import signing_key

        app.config["SECRET_KEY"] = signing_key.stored_or_new(client)
    app.register_blueprint(installs.bp)
    app.register_blueprint(discovery.bp)
    heartbeat_api.init_app(app)
    app.register_blueprint(status.bp)
    _register_error_pages(app)

    @app.context_processor
    def _ephemeral() -> dict[str, Any]:
        return {"ephemeral": bool(app.config.get("EPHEMERAL"))}

    return app


def _register_error_pages(app: Flask) -> None:
    from appengine.limits import LimitReached

    @app.errorhandler(LimitReached)
    def limit_reached(exc: LimitReached) -> tuple[str, int, dict[str, str]]:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        page = render_template("error.html", code=exc.status, message=exc.message)
        return page, exc.status, headers

    @app.errorhandler(410)
    def gone(exc: HTTPException) -> tuple[str, int]:
        return render_template("error.html", code=410, message=exc.description), 410

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        return render_template(
            "error.html", code=400, message=f"csrf_token: {exc.description}"
        ), 400

    @app.errorhandler(413)
    def too_large(exc: HTTPException) -> tuple[str, int]:
        limit = app.config["MAX_CONTENT_LENGTH"] // 1024
        message = f"request body: larger than {limit} KiB"
        return render_template("error.html", code=413, message=message), 413

    @app.errorhandler(InvalidDocument)
    def invalid_document(exc: InvalidDocument) -> tuple[str, int]:
        # A template or validator disagreement: our bug, not the user's. Nothing was stored.
        log.error("generated document failed its checks: %s", exc)
        message = "document: the generated user-data failed its checks; nothing was stored"
        return render_template("error.html", code=500, message=message), 500

    @app.errorhandler(404)
    def not_found(exc: HTTPException) -> tuple[str, int]:
        return render_template("error.html", code=404, message=exc.description), 404
