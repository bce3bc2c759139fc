"""The install form's choice of how the panel is reached: HTTPS (the default) or only
from the machine itself, through an SSH tunnel; the provisioner unit says which."""

from __future__ import annotations

import yaml
from flask import Flask
from flask.testing import FlaskClient

from appengine.models import read_token
from tests.appengine.test_installs import answers, create, stored
from vulcano import cloudconfig


def unit_of(client: FlaskClient, manage: str) -> str:
    served = client.get(f"/cloud-config/{read_token(manage)}").text
    files = {f["path"]: f["content"] for f in yaml.safe_load(served)["write_files"]}
    return str(files["/etc/systemd/system/vulcano-provisioner.service"])


def test_the_form_offers_both_with_https_chosen(client: FlaskClient) -> None:
    page = client.get("/").text
    assert 'name="panel_access"' in page
    assert '<option value="https" selected>' in " ".join(page.split())
    assert 'value="localhost"' in page


def test_https_by_default_and_localhost_only_when_chosen(client: FlaskClient) -> None:
    default = unit_of(client, create(client))
    assert "VULCANO_PANEL_PLAIN_HTTP" not in default
    assert "VULCANO_PANEL_ADDRESS" not in default
    tunnel = unit_of(client, create(client, panel_access="localhost"))
    assert "Environment=VULCANO_PANEL_ADDRESS=127.0.0.1\n" in tunnel
    assert "Environment=VULCANO_PANEL_PLAIN_HTTP=1\n" in tunnel
    assert "--env VULCANO_PANEL_ADDRESS --env VULCANO_PANEL_PLAIN_HTTP" in tunnel


def test_an_unknown_choice_is_refused_naming_the_field(app: Flask, client: FlaskClient) -> None:
    answer = client.post("/installs", data=answers(client, panel_access="http-everywhere"))
    assert answer.status_code == 400
    assert "panel_access" in answer.text and ", ".join(cloudconfig.PANEL_ACCESS) in answer.text
    assert stored(app) == []
