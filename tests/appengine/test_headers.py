"""Response headers fit for the open internet, and only trusted hosts answered."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from appengine import ConfigError, create_app, headers
from appengine.discovery_models import DiscoveryToken
from appengine.models import Install, read_token
from tests.appengine.conftest import TEST_SECRET_KEY
from tests.appengine.discovery_helpers import count_entities
from tests.appengine.test_installs import answers, create
from vulcano.lab.services import DatastoreEmulator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "appengine" / "templates"


def test_pages_get_a_csp_without_inline_anything_and_never_framed(client: FlaskClient) -> None:
    manage = create(client)
    for path in ("/", f"/installs/{manage}"):
        csp = client.get(path).headers["Content-Security-Policy"]
        assert csp == headers.PAGE_CSP
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp
    assert client.get("/").headers["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_script_or_style() -> None:
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for inline in ("<script", "<style", "style=", "onclick=", "onload=", "javascript:"):
            assert inline not in text, f"{template.name}: {inline}"


def test_the_permalink_gets_a_sandboxing_csp(client: FlaskClient) -> None:
    permalink = client.get(f"/cloud-config/{read_token(create(client))}")
    assert permalink.headers["Content-Security-Policy"] == (
        "sandbox; default-src 'none'; frame-ancestors 'none'"
    )
    assert permalink.headers["Cache-Control"] == "private, no-store"


def test_hsts_over_https_only(client: FlaskClient) -> None:
    secure = client.get("/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_a_host_off_the_trusted_list_is_refused_and_nothing_stored(
    app: Flask, client: FlaskClient
) -> None:
    form = answers(client)
    refused = client.post("/installs", data=form, headers={"Host": "evil.example"})
    assert refused.status_code == 400
    assert "host: evil.example is not a host this installer serves" in refused.text
    assert count_entities(app, Install) == 0
    new = client.get("/new?size=3", headers={"Host": "evil.example"})
    assert new.status_code == 400
    assert "host: evil.example is not" in new.json["cause"]
    assert count_entities(app, DiscoveryToken) == 0


def test_trusted_hosts_match_exactly_or_as_subdomains_with_any_port() -> None:
    trusted = ["vulcano.example", ".r.appspot.com"]
    assert headers.is_trusted("vulcano.example", trusted)
    assert headers.is_trusted("VULCANO.example:443", trusted)
    assert headers.is_trusted("p.uc.r.appspot.com", trusted)
    assert not headers.is_trusted("vulcano.example.evil", trusted)
    assert not headers.is_trusted("evilvulcano.example", trusted)
    assert headers.is_trusted("[::1]:8080", list(headers.LOCAL_HOSTS))


def test_on_app_engine_the_trusted_hosts_must_be_set(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAE_ENV", "standard")
    monkeypatch.delenv("VULCANO_TRUSTED_HOSTS", raising=False)
    with pytest.raises(ConfigError, match="VULCANO_TRUSTED_HOSTS"):
        create_app({"SECRET_KEY": TEST_SECRET_KEY, "DATASTORE_PROJECT": datastore.project})
    monkeypatch.setenv("VULCANO_TRUSTED_HOSTS", "vulcano.example")
    app = create_app({"SECRET_KEY": TEST_SECRET_KEY, "DATASTORE_PROJECT": datastore.project})
    assert app.config["TRUSTED_HOSTS_LIST"] == ["vulcano.example"]


def test_app_yaml_bounds_instances_and_guards_the_cron() -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text())
    scaling = config["automatic_scaling"]
    assert 1 <= scaling["min_instances"] <= scaling["max_instances"] <= 5
    workers = int(config["entrypoint"].split("--workers ")[1].split()[0])
    threads = int(config["entrypoint"].split("--threads ")[1].split()[0])
    assert scaling["max_concurrent_requests"] == workers * threads
    from appengine import limits

    assert threads > limits.DISCOVERY_WATCHES_PER_PROCESS
    urls = [h["url"] for h in config["handlers"]]
    [cron] = [h for h in config["handlers"] if h["url"] == "/cron/.*"]
    assert cron["login"] == "admin"
    assert urls.index("/cron/.*") < urls.index("/.*")
    cron_yaml = yaml.safe_load((ROOT / "cron.yaml").read_text())
    assert all(job["url"].startswith("/cron/") for job in cron_yaml["cron"])
