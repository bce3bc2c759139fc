"""Alerts on the installer's pages: settings and a test button on the manage page, the
container's test-alert API, and the cron sweep that finds clusters gone silent."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from appengine import csrf, limits, policy
from appengine.alerts_engine import (
    AlertRecord,
    AlertSettings,
    on_summary,
    retry_undelivered,
    send_test,
    sweep,
)
from appengine.heartbeat_api import SUMMARY_HOOKS
from appengine.installs import usable
from appengine.models import Install

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)

# How many destinations of each kind an install may have, and how long one may be.
MAX_DESTINATIONS = 5
MAX_URL_LENGTH = 2000
_EMAIL_RE = re.compile(r"[^@\s,;<>]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


class AlertSettingsError(ValueError):
    """A destination we cannot send to; the message names the field."""


def read_destinations(form: Any) -> tuple[list[str], list[str]]:
    """The e-mail addresses and webhook URLs of the settings form, checked."""
    emails = [e for e in re.split(r"[\s,;]+", form.get("emails", "")) if e]
    webhooks = [w for w in form.get("webhooks", "").split() if w]
    if len(emails) > MAX_DESTINATIONS or len(webhooks) > MAX_DESTINATIONS:
        raise AlertSettingsError(f"alerts: at most {MAX_DESTINATIONS} addresses and webhooks")
    for email in emails:
        if not _EMAIL_RE.fullmatch(email):
            raise AlertSettingsError(f"emails: {email[:80]!r} is not an e-mail address")
    for url in webhooks:
        try:
            parts = urlsplit(url)
        except ValueError:  # 'http://[x]': brackets around no IPv6 address
            parts = urlsplit("")
        if len(url) > MAX_URL_LENGTH or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise AlertSettingsError("webhooks: each must be an http(s) URL with a host")
    return emails, webhooks


@bp.post("/installs/<token>/alerts")
def save(token: str) -> BaseResponse:
    """Set where the install's alerts go (empty fields: no alerts)."""
    install = usable(Install.get_by_token(token))
    try:
        emails, webhooks = read_destinations(request.form)
    except AlertSettingsError as exc:
        abort(400, str(exc))
    settings = AlertSettings.of(install.key)
    settings.populate(emails=emails, webhooks=webhooks)
    settings.put(timeout=policy.DATASTORE_TIMEOUT)
    flash(f"Alerts go to {len(emails)} e-mail addresses and {len(webhooks)} webhooks.")
    return redirect(url_for("installs.show", token=token, _anchor="alerts"), code=303)


@bp.post("/installs/<token>/alerts/test")
def test(token: str) -> BaseResponse:
    """Send a test alert to the install's destinations now."""
    install = usable(Install.get_by_token(token))
    limits.TEST_ALERTS.take(_quota_name(install))
    outcome = send_test(install)
    flash(f"Test alert: {len(outcome.sent)} delivered, {len(outcome.failed)} failed.")
    return redirect(url_for("installs.show", token=token, _anchor="alerts"), code=303)


def _quota_name(install: Install) -> str:
    return f"install:{install.key.id()}"


@bp.post("/api/alerts/test")
def api_test() -> tuple[Response, int]:
    """The container's test alert: ``Authorization: Bearer <provisioner token>``."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    install = (
        Install.get_by_provisioner_token(credential.strip()) if scheme.lower() == "bearer" else None
    )
    if install is None or install.expired:
        return jsonify(error="Authorization: no live install has this token"), 401
    try:
        limits.TEST_ALERTS.take(_quota_name(install))
    except limits.LimitReached as exc:
        answer = jsonify(error=exc.message)
        answer.headers["Retry-After"] = str(exc.retry_after or 3600)
        return answer, exc.status
    outcome = send_test(install)
    return jsonify(sent=len(outcome.sent), failed=len(outcome.failed)), 200


csrf.exempt(api_test)


@bp.get("/cron/heartbeat/sweep")
def cron_sweep() -> Response:
    """Turn clusters silent for `policy.UNREACHABLE_INTERVALS` intervals unreachable; cron only."""
    # App Engine strips X-Appengine-Cron from every request that cron did not send.
    if request.headers.get("X-Appengine-Cron") != "true":
        return Response("cron only\n", status=403, mimetype="text/plain")
    found = sweep()
    retried = retry_undelivered()
    log.info("heartbeat sweep: %d unreachable, %d alerts sent again", len(found), retried)
    return Response(f"unreachable {len(found)}\nretried {retried}\n", mimetype="text/plain")


@bp.app_context_processor
def _panel_helpers() -> dict[str, Any]:
    return {
        "alert_settings": lambda install: AlertSettings.of(install.key),
        "alert_records": lambda install: AlertRecord.for_install(install.key)[-10:],
        "alert_smtp_configured": bool(current_app.config.get("SMTP_HOST")),
    }


def init_app(app: Flask) -> None:
    """Serve the alert pages and have every stored heartbeat run the alert engine."""
    app.register_blueprint(bp)
    # the heartbeat API runs its hooks after it stored a summary (either may be set up first)
    app.extensions.setdefault(SUMMARY_HOOKS, []).append(on_summary)
