"""The admin's login: the password's hash in the store, sessions, CSRF, the rate limit."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from container import policy
from container.panel import create_app, credentials
from container.panel.auth import current_actor
from container.services.provisioning import ProvisioningSettings
from container.store import open_store
from tests.container.panel.conftest import PASSWORD, Browser

# Every page behind the login, as a GET (the POST routes are refused by CSRF before login).
PRIVATE_PAGES = [
    "/",
    "/clusters",
    "/clusters/lab",
    "/clusters/lab/machines",
    "/clusters/lab/units",
    "/clusters/lab/units/web@.service/log",
    "/clusters/lab/user-data",
    "/clusters/lab/health",
    "/audit",
]


def test_the_right_password_starts_a_session_and_goes_where_asked(browser: Browser) -> None:
    browser.get("/login?next=/clusters")
    answer = browser.post("/login", {"password": PASSWORD, "next": "/clusters"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/clusters"
    assert browser.get("/clusters").status_code == 200


def test_a_wrong_password_gets_no_session(browser: Browser) -> None:
    answer = browser.login("not the password")
    assert answer.status_code == 401
    assert 'data-field="password"' in answer.text
    assert "Wrong password." in answer.text
    assert browser.get("/clusters").status_code == 302


@pytest.mark.parametrize("path", PRIVATE_PAGES)
def test_pages_send_a_stranger_to_the_login(panel: FlaskClient, path: str) -> None:
    answer = panel.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "path",
    ["/clusters", "/clusters/lab/units/action", "/clusters/lab/units/upload", "/logout"],
)
def test_forms_posted_without_a_csrf_token_are_refused(admin: Browser, path: str) -> None:
    answer = admin.client.post(path, data={"unit": "web.service", "action": "destroy"})
    assert answer.status_code == 400
    assert 'data-field="csrf_token"' in answer.text


def test_the_login_form_needs_its_csrf_token_too(panel: FlaskClient) -> None:
    answer = panel.post("/login", data={"password": PASSWORD})
    assert answer.status_code == 400
    assert "csrf_token" in answer.text
    assert panel.get("/clusters").status_code == 302


def test_a_token_from_another_session_is_refused(app: Flask, admin: Browser) -> None:
    stranger = Browser(app.test_client())
    stranger.get("/login")
    stranger.token = admin.token
    assert stranger.post("/login", {"password": PASSWORD}).status_code == 400


def test_health_and_the_login_page_need_no_login(panel: FlaskClient) -> None:
    assert panel.get("/healthz").status_code == 200
    assert panel.get("/login").status_code == 200


def test_failed_logins_from_one_address_are_limited_then_told_when_to_retry(
    browser: Browser,
) -> None:
    for _ in range(policy.LOGIN_MAX_FAILURES):
        assert browser.login("guess").status_code == 401
    answer = browser.login(PASSWORD)  # even the right one, while limited
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= policy.LOGIN_FAILURE_WINDOW
    assert browser.get("/clusters").status_code == 302


def test_the_limit_counts_per_client_address(app: Flask, browser: Browser) -> None:
    for _ in range(policy.LOGIN_MAX_FAILURES):
        browser.login("guess")
    elsewhere = Browser(app.test_client())
    elsewhere.get("/login", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    answer = elsewhere.post(
        "/login", {"password": PASSWORD}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
    )
    assert answer.status_code == 302


def test_the_store_keeps_a_real_hash_not_the_password(app: Flask, state_dir: Path) -> None:
    stored = open_store(state_dir).setting(credentials.PASSWORD_HASH_SETTING)
    assert stored is not None
    assert PASSWORD not in stored
    assert stored.startswith("scrypt:")
    assert app.config["ADMIN_PASSWORD_HASH"] == stored


def test_the_environment_password_replaces_the_stored_one(
    settings: ProvisioningSettings, app: Flask
) -> None:
    again = create_app(
        {"TESTING": True}, settings=settings, environ={"VULCANO_ADMIN_PASSWORD": "new one"}
    )
    browser = Browser(again.test_client())
    assert browser.login(PASSWORD).status_code == 401
    assert browser.login("new one").status_code == 302


def test_a_password_changed_ends_the_sessions_made_with_the_old_one(
    settings: ProvisioningSettings, admin: Browser
) -> None:
    again = create_app(
        {"TESTING": True}, settings=settings, environ={"VULCANO_ADMIN_PASSWORD": "new one"}
    )
    moved = again.test_client()
    moved.set_cookie("vulcano_panel", admin.client.get_cookie("vulcano_panel").value)  # type: ignore[union-attr]
    assert moved.get("/clusters").status_code == 302


def test_without_one_a_password_is_generated_and_printed_once(state_dir: Path) -> None:
    store = open_store(state_dir) if state_dir.exists() else None
    assert store is None
    state_dir.mkdir(mode=0o700)
    store = open_store(state_dir)
    first, second = io.StringIO(), io.StringIO()
    stored = credentials.admin_password_hash(store, None, log=first)
    assert credentials.admin_password_hash(store, None, log=second) == stored
    assert second.getvalue() == ""
    printed = first.getvalue().strip().rsplit(" ", 1)[-1]
    assert len(printed) >= 20
    assert credentials.password_matches(stored, printed)
    assert printed not in stored


def test_the_generated_password_logs_in(
    settings: ProvisioningSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app({"TESTING": True}, settings=settings, environ={})
    printed = capsys.readouterr().err.strip().rsplit(" ", 1)[-1]
    assert Browser(app.test_client()).login(printed).status_code == 302
    create_app({"TESTING": True}, settings=settings, environ={})
    assert printed not in capsys.readouterr().err


def test_the_session_key_survives_a_restart_on_the_same_state_dir(
    settings: ProvisioningSettings, app: Flask, admin: Browser
) -> None:
    again = create_app(
        {"TESTING": True}, settings=settings, environ={"VULCANO_ADMIN_PASSWORD": PASSWORD}
    )
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    assert len(app.config["SECRET_KEY"]) == 2 * credentials.SECRET_KEY_BYTES
    restarted = again.test_client()
    restarted.set_cookie("vulcano_panel", admin.client.get_cookie("vulcano_panel").value)  # type: ignore[union-attr]
    assert restarted.get("/clusters").status_code == 200


def test_the_session_cookie_is_httponly_samesite_lax_and_expires(browser: Browser) -> None:
    answer = browser.login()
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie
    assert PASSWORD not in cookie


def test_logout_ends_the_session(admin: Browser) -> None:
    admin.get("/clusters")
    assert admin.post("/logout").status_code == 302
    assert admin.get("/clusters").status_code == 302


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example/x", "javascript:x"]
)
def test_the_login_never_redirects_off_the_panel(browser: Browser, target: str) -> None:
    browser.get("/login")
    answer = browser.post("/login", {"password": PASSWORD, "next": target})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/clusters"


def test_the_actor_names_the_admin_and_the_client_address(app: Flask) -> None:
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.8"}):
        assert current_actor() == "admin@192.0.2.8 (panel)"


def test_pages_tell_the_browser_not_to_frame_cache_or_run_scripts(admin: Browser) -> None:
    answer = admin.get("/clusters")
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script" not in answer.text


def test_a_session_older_than_its_lifetime_is_refused(settings: ProvisioningSettings) -> None:
    app = create_app(
        {"TESTING": True, "PERMANENT_SESSION_LIFETIME": 1},
        settings=settings,
        environ={"VULCANO_ADMIN_PASSWORD": PASSWORD},
    )
    browser = Browser(app.test_client())
    browser.login()
    assert browser.get("/clusters").status_code == 200
    cookie = browser.client.get_cookie("vulcano_panel")
    assert cookie is not None
    time.sleep(2.2)
    # a browser that kept the cookie past its expiry: the signed value carries its time
    kept = app.test_client()
    kept.set_cookie("vulcano_panel", cookie.value)
    assert kept.get("/clusters").status_code == 302


def test_the_login_page_sends_the_logged_in_admin_on(admin: Browser) -> None:
    answer = admin.get("/login?next=/clusters/lab")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/clusters/lab"
