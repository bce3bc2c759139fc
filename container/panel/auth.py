"""Logging in and out, and the rule that every page but a few needs a login.

One account, the admin, whose password hash the store keeps (`credentials`). A login
puts the admin and a marker of the password's hash in Flask's signed session cookie
(HttpOnly, SameSite=Lax, `policy.SESSION_LIFETIME`); a password changed since makes
that session worthless. Failed logins are rate limited per client address.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from container.panel import credentials
from container.panel.ratelimit import LoginLimiter

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

ADMIN = "admin"
# Pages anyone may ask for: health checks, the login itself, and the nodes' join route.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "auth.login", "static"})
PUBLIC_BLUEPRINTS = frozenset({"join"})


def client_address() -> str:
    return request.remote_addr or "unknown"


# The face the audit log names for changes made here (the CLI's is "cli").
FACE = "panel"


def actor_name() -> str:
    """Who is making this request: the admin, at the client's address."""
    return f"{ADMIN}@{client_address()}"


def current_actor() -> str:
    """Who is making this request, as the audit log shows them: ``admin@<addr> (panel)``."""
    return f"{actor_name()} ({FACE})"


def logged_in() -> bool:
    marker = session.get("pw")
    return (
        session.get("user") == ADMIN
        and isinstance(marker, str)
        and credentials.same_marker(marker, _marker())
    )


def _marker() -> str:
    return credentials.hash_marker(current_app.config["ADMIN_PASSWORD_HASH"])


def _limiter() -> LoginLimiter:
    limiter = current_app.extensions["vulcano_login_limiter"]
    assert isinstance(limiter, LoginLimiter)
    return limiter


def _safe_next(target: str | None) -> str:
    """Only a path on this panel: never another site (an open redirect)."""
    if not target:
        return url_for("clusters.index")
    parts = urlsplit(target)
    # browsers read "/\host" as "//host": another site
    if parts.scheme or parts.netloc or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return url_for("clusters.index")
    return target


def init_app(app: Flask) -> None:
    """Require a login for every page that is not public."""
    app.extensions["vulcano_login_limiter"] = LoginLimiter()

    @app.before_request
    def require_login() -> Response | None:
        endpoint = request.endpoint or ""
        if endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
            return None
        if request.endpoint is None:  # a 404 or 405 to come: no need to say more
            return None
        if logged_in():
            return None
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a right password starts a session and goes where asked."""
    address = client_address()
    if request.method == "GET":
        if logged_in():
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", next=request.args.get("next", ""))
    wait = _limiter().retry_after(address)
    if wait:
        log.warning("login from %s refused: too many failed attempts", address)
        page = render_template("login.html", next="", error="Too many failed logins.", wait=wait)
        return page, 429, {"Retry-After": str(wait)}
    password = request.form.get("password", "")
    if not credentials.password_matches(current_app.config["ADMIN_PASSWORD_HASH"], password):
        _limiter().failed(address)
        log.warning("failed login from %s", address)
        page = render_template(
            "login.html",
            next=request.form.get("next", ""),
            error="Wrong password.",
            field="password",
        )
        return page, 401
    _limiter().succeeded(address)
    session.clear()
    session.permanent = True
    session["user"] = ADMIN
    session["pw"] = _marker()
    log.info("login from %s", address)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))
