"""The admin panel: a Flask app on the provisioning container's service layer.

Server-rendered pages, one blueprint per concern; the views call `container.services`
as the CLI's commands do, on the cluster a page names (`connection`). Every page but
/healthz, /login and the nodes' join route needs the admin's login (`auth`); every form
carries a CSRF token (Flask-WTF). Served by `vulcano serve` (gunicorn).

    auth            login, logout, the login rule, current_actor()
    credentials     the admin password's hash and the session key, in the store
    ratelimit       failed logins per client address
    connection      the store, the cluster of a page, service errors as HTTP statuses
    clusters_pages  the clusters, the create form, a cluster, its nodes' user-data
    machines_pages  a cluster's machines
    monitor_pages   a cluster's live health: machines up, late, down; units by state
    units_pages     a cluster's units and the changes made to them
    logs_pages      a unit's output, or every instance's of a template
    audit_pages     the audit log of every change, through the CLI or the panel
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from container import policy
from container.panel import credentials
from container.services.provisioning import (
    ProvisioningSettings,
    prepare_state_dir,
)
from container.ssh import keys
from container.store import open_store

log = logging.getLogger(__name__)

# A request body larger than this is refused (a unit file upload is far smaller).
MAX_REQUEST_BYTES = 256 * 1024

csrf = CSRFProtect()


def create_app(
    test_config: dict[str, Any] | None = None,
    settings: ProvisioningSettings | None = None,
    environ: Mapping[str, str] = os.environ,
    tls_fingerprint: str | None = None,
) -> Flask:
    """Create and configure the admin panel.

    ``settings`` default to the environment the installer's unit sets
    (`ProvisioningSettings.from_environ`); SettingsError or StateDirError when they
    cannot be used, so a container that could not work never starts serving. The store
    in the state directory keeps the session key and the admin password's hash
    (``VULCANO_ADMIN_PASSWORD`` in ``environ`` sets it). ``tls_fingerprint`` says the
    panel is served over HTTPS with that certificate: session cookies are then Secure,
    and a generated password is printed with the fingerprint.
    """
    app = Flask(__name__)
    settings = settings or ProvisioningSettings.from_environ(environ)
    prepare_state_dir(settings.state_dir)
    store = open_store(settings.state_dir)
    keys.ensure_identity(settings.state_dir)  # the container's SSH key, on first start
    app.config.from_mapping(
        PROVISIONING=settings,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SECRET_KEY=credentials.secret_key(store),
        SESSION_COOKIE_NAME="vulcano_panel",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=tls_fingerprint is not None,
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(seconds=policy.SESSION_LIFETIME),
        # the token is bound to the session, which has its own lifetime
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.config["ADMIN_PASSWORD_HASH"] = credentials.admin_password_hash(
        store, environ.get(credentials.ADMIN_PASSWORD_VAR) or None, fingerprint=tls_fingerprint
    )
    app.extensions["vulcano.store"] = store
    csrf.init_app(app)

    from container.panel import (
        audit_pages,
        auth,
        clusters_pages,
        connection,
        health,
        join,
        logs_pages,
        machines_pages,
        monitor_pages,
        units_pages,
    )

    auth.init_app(app)
    connection.init_app(app)
    for blueprint in (
        auth.bp,
        health.bp,
        clusters_pages.bp,
        machines_pages.bp,
        monitor_pages.bp,
        units_pages.bp,
        logs_pages.bp,
        audit_pages.bp,
        join.bp,  # no login: a node holds only the cluster's join token
    ):
        app.register_blueprint(blueprint)
    # a node's enrolment carries its token in a header, never a cookie: no CSRF to stop
    csrf.exempt(join.bp)
    _register_error_pages(app)
    app.after_request(_security_headers)
    app.add_template_filter(_ago, "ago")
    app.add_template_filter(_when, "when")
    log.info(
        "panel for cluster %s (size %d), state in %s",
        settings.cluster_name,
        settings.cluster_size,
        settings.state_dir,
    )
    return app


HSTS_MAX_AGE = 365 * 24 * 3600

# The pages run no script and load nothing from elsewhere; only their inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # pages show the cluster as it is now, and some carry a CSRF token: never cache them
    response.headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:  # browsers take HSTS only over HTTPS they trusted anyway
        response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}")
    return response


def _ago(when: float) -> str:
    """How long ago a time (seconds since the epoch) was, as a person says it."""
    seconds = max(0, int(time.time() - when))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _when(at: float) -> str:
    """A time (seconds since the epoch) in UTC, to the minute."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        message = f"csrf_token: {exc.description} Reload the page and try again."
        return render_template("error.html", code=400, message=message, field="csrf_token"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        page = render_template("error.html", code=code, message=exc.description)
        return page, code, dict(exc.get_headers())
