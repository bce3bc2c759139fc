"""The app factory, its App Engine config, its log hygiene and its extension points."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

import appengine
from appengine import redact
from tests.appengine.conftest import TEST_SECRET_KEY
from tests.appengine.test_installs import create
from vulcano.lab.services import DatastoreEmulator

ROOT = Path(__file__).resolve().parents[2]


def test_app_yaml_runs_gunicorn_keeps_an_instance_warm_and_serves_static() -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text())
    assert config["runtime"].startswith("python3")
    assert config["entrypoint"].startswith("gunicorn ")
    assert config["entrypoint"].endswith(" appengine.main:app")
    assert config["automatic_scaling"]["min_instances"] == 1
    [static] = [h for h in config["handlers"] if "static_dir" in h]
    assert (ROOT / static["static_dir"] / "style.css").exists()


def test_app_yaml_needs_no_hand_made_file() -> None:
    # App Engine refuses a deploy whose included file is missing; the signing key is made
    # by the installer itself (appengine.signing_key).
    config = yaml.safe_load((ROOT / "app.yaml").read_text())
    assert "includes" not in config
    assert "VULCANO_SECRET_KEY" not in config.get("env_variables", {})


def test_entrypoint_module_builds_the_app(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VULCANO_SECRET_KEY", "from-the-environment")
    import appengine.main

    main = importlib.reload(appengine.main)
    assert isinstance(main.app, Flask)
    assert main.app.config["SECRET_KEY"] == "from-the-environment"


class _Without(jinja2.BaseLoader):
    """A loader that has every template of ``inner`` but those it was told to hide."""

    def __init__(self, inner: jinja2.BaseLoader, hidden: set[str]) -> None:
        self.inner, self.hidden = inner, hidden

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        if template in self.hidden:
            raise jinja2.TemplateNotFound(template)
        return self.inner.get_source(environment, template)


def test_install_page_has_room_for_the_discovery_panel(client: FlaskClient, app: Flask) -> None:
    token = create(client)
    assert app.jinja_loader is not None
    real = app.jinja_loader
    # the real panels are in the page...
    page = client.get(f"/installs/{token}").text
    assert '<section id="discovery">' in page and '<section id="alerts">' in page
    # ...and a page without them still renders (they are included "ignore missing")
    app.jinja_loader = _Without(real, {"discovery/_panel.html", "alerts/_panel.html"})
    app.jinja_env.cache.clear()
    bare = client.get(f"/installs/{token}")
    assert bare.status_code == 200
    assert '<section id="discovery">' not in bare.text and 'id="alerts"' not in bare.text
    # ...and another panel takes the discovery panel's place, with the page's context
    panel = "<div id='discovery-panel'>{{ install.cluster_name }} {{ token | length }}</div>"
    app.jinja_loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader({"discovery/_panel.html": panel}), real]
    )
    app.jinja_env.cache.clear()
    page = client.get(f"/installs/{token}").text
    assert f"<div id='discovery-panel'>prod {len(token)}</div>" in page


def test_request_logs_never_carry_a_token(caplog: pytest.LogCaptureFixture) -> None:
    redact.install()
    token = "DPZhAyD-aBAcdm8A1tznHyqlos5B16wE-69pVEhloyo"
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info('"GET /cloud-config/%s HTTP/1.1" 200 -', token)
        logging.getLogger("gunicorn.access").info("%(r)s", {"r": f"GET /installs/{token}"})
        try:
            raise KeyError(token)
        except KeyError:
            logging.getLogger("appengine").exception("Exception on /installs/%s [GET]", token)
    assert token not in caplog.text
    assert "GET /cloud-config/<token> HTTP/1.1" in caplog.text
    assert "GET /installs/<token>" in caplog.text
    assert "KeyError" in caplog.text


def test_every_module_of_the_app_logs_with_its_tokens_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact.install()
    token, discovery = (
        "DPZhAyD-aBAcdm8A1tznHyqlos5B16wE-69pVEhloyo",
        "0a4ce01098cfc6385a4425a4df58cd9f",
    )
    names = [m.name for m in pkgutil.iter_modules(appengine.__path__, prefix="appengine.")]
    assert {"appengine.alerts_engine", "appengine.alert_delivery"} <= set(names)
    with caplog.at_level(logging.INFO):
        for name in names:
            logging.getLogger(name).warning("for %s and %s", token, discovery)
    assert token not in caplog.text and discovery not in caplog.text
    assert caplog.text.count("for <token> and <discovery-token>") == len(names)


def test_security_headers_keep_tokens_out_of_referers_and_caches(client: FlaskClient) -> None:
    token = create(client)
    page = client.get(f"/installs/{token}")
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["Cache-Control"] == "private, no-store"


def test_secret_key_in_tests_is_the_one_given(app: Flask) -> None:
    assert app.config["SECRET_KEY"] == TEST_SECRET_KEY
