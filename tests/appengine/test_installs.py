"""The install flow over HTTP, against the real Datastore emulator."""

from __future__ import annotations

import re
import threading

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from google.cloud import ndb
from werkzeug.datastructures import MultiDict

from appengine.models import Install, read_token
from tests.appengine.conftest import csrf_token
from vulcano.lab.sshkeys import ed25519_line, rsa_line

KEY = ed25519_line("alice@laptop")


def answers(client: FlaskClient, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf_token(client),
        "cluster_name": "prod",
        "ssh_keys": KEY,
        "flavour": "cloud-init",
        "image": "ghcr.io/vulcano/provisioner:1.0",
        "size": "3",
    }
    form.update(changes)
    return form


def create(client: FlaskClient, **changes: str) -> str:
    """Submit the form; return the new install's token."""
    response = client.post("/installs", data=answers(client, **changes))
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/installs/([A-Za-z0-9_-]+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def stored(app: Flask) -> list[Install]:
    with app.extensions["ndb_client"].context():
        installs: list[Install] = Install.query().fetch()
        return installs


def test_form_page_has_every_field_and_a_csrf_token(client: FlaskClient) -> None:
    page = client.get("/").text
    for field in ["cluster_name", "ssh_keys", "flavour", "image", "size", "csrf_token"]:
        assert f'name="{field}"' in page
    for flavour in ["cloud-init", "flatcar", "coreos-legacy"]:
        assert f'value="{flavour}"' in page


@pytest.mark.parametrize(
    ("flavour", "content_type", "first_line"),
    [
        ("cloud-init", "text/cloud-config; charset=utf-8", "#cloud-config"),
        ("coreos-legacy", "text/cloud-config; charset=utf-8", "#cloud-config"),
        ("flatcar", "application/json", "{"),
    ],
)
def test_create_shows_the_document_and_the_permalink_serves_it(
    app: Flask, client: FlaskClient, flavour: str, content_type: str, first_line: str
) -> None:
    token = create(client, flavour=flavour)
    page = client.get(f"/installs/{token}")
    assert page.status_code == 200
    assert f"/cloud-config/{read_token(token)}" in page.text
    served = client.get(f"/cloud-config/{read_token(token)}")
    assert served.status_code == 200
    assert served.headers["Content-Type"] == content_type
    assert served.headers["Cache-Control"] == "private, no-store"
    assert served.text.splitlines()[0] == first_line
    assert KEY in served.text
    [install] = stored(app)
    assert install.document == served.text
    assert (install.cluster_name, install.flavour, install.size) == ("prod", flavour, 3)
    assert install.ssh_keys == [KEY]


def test_install_page_offers_a_one_line_command_and_an_include(client: FlaskClient) -> None:
    token = create(client)
    page = client.get(f"/installs/{token}").text
    url = f"http://localhost/cloud-config/{read_token(token)}"
    assert re.search(rf'<pre id="command">curl -fsSL {re.escape(url)} \|', page)
    assert f'<pre id="include">#include\n{url}\n</pre>' in page
    legacy = create(client, flavour="coreos-legacy")
    page = client.get(f"/installs/{legacy}").text
    assert f"coreos-cloudinit --from-url=http://localhost/cloud-config/{read_token(legacy)}" in page


def test_download_is_an_attachment(client: FlaskClient) -> None:
    token = create(client, flavour="flatcar")
    response = client.get(f"/cloud-config/{read_token(token)}?download=1")
    assert response.headers["Content-Disposition"] == 'attachment; filename="vulcano-prod.ign"'


def test_coming_back_with_the_token_finds_the_install(client: FlaskClient) -> None:
    token = create(client)
    response = client.post("/lookup", data={"csrf_token": csrf_token(client), "token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/installs/{token}"


def test_delete_forgets_the_install_and_its_permalink(app: Flask, client: FlaskClient) -> None:
    keep = create(client, cluster_name="keep")
    token = create(client)
    response = client.post(f"/installs/{token}/delete", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 303
    assert client.get(f"/cloud-config/{read_token(token)}").status_code == 404
    assert client.get(f"/installs/{token}").status_code == 404
    again = client.post(f"/installs/{token}/delete", data={"csrf_token": csrf_token(client)})
    assert again.status_code == 404
    assert [i.cluster_name for i in stored(app)] == ["keep"]
    assert client.get(f"/cloud-config/{read_token(keep)}").status_code == 200


def test_delete_forgets_the_installs_alert_settings_too(app: Flask, client: FlaskClient) -> None:
    from appengine.alerts_engine import AlertSettings

    token = create(client)
    [install] = stored(app)
    with app.extensions["ndb_client"].context():
        AlertSettings(key=AlertSettings.key_for(install.key), emails=["ops@example.org"]).put()
    response = client.post(f"/installs/{token}/delete", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 303
    with app.extensions["ndb_client"].context():
        assert AlertSettings.key_for(install.key).get() is None


@pytest.mark.parametrize(
    "path", ["/cloud-config/" + "A" * 43, "/installs/" + "A" * 43, "/cloud-config/short"]
)
def test_unknown_token_is_404(client: FlaskClient, path: str) -> None:
    create(client)
    response = client.get(path)
    assert response.status_code == 404
    assert "no install has this token" in response.text


def test_unknown_token_lookup_is_404(client: FlaskClient) -> None:
    data = {"csrf_token": csrf_token(client), "token": "nope"}
    assert client.post("/lookup", data=data).status_code == 404


def test_forms_without_csrf_token_are_refused(app: Flask, client: FlaskClient) -> None:
    form = answers(client)
    del form["csrf_token"]
    response = client.post("/installs", data=form)
    assert response.status_code == 400
    assert "csrf_token" in response.text
    token = create(client)
    forged = client.post(f"/installs/{token}/delete", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert client.get(f"/cloud-config/{read_token(token)}").status_code == 200
    assert len(stored(app)) == 1


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("cluster_name", "", "cluster_name: use 1-63 lowercase"),
        ("cluster_name", "prod\nruncmd: [reboot]", "cluster_name: use 1-63 lowercase"),
        ("cluster_name", 'a"#{{ x }}', "cluster_name: use 1-63 lowercase"),
        ("ssh_keys", "", "ssh_keys: at least one public key"),
        ("ssh_keys", "ssh-rsa AAAAB3NzaC1yc2E= me", "ssh_keys: line 1: key data ends"),
        ("ssh_keys", KEY + "\nssh-ed25519 {{ 7*7 }}", "ssh_keys: line 2: key data is not valid"),
        ("ssh_keys", rsa_line(1024), "ssh_keys: line 1: RSA key has 1024 bits"),
        ("flavour", "windows", "flavour: choose one of cloud-init, flatcar, coreos-legacy"),
        ("image", "ubuntu:latest\nExecStartPre=/bin/sh", "image: not a container image"),
        ("size", "three", "size: must be a whole number"),
        ("size", "0", "size: must be between 1 and 100"),
        ("size", "-1", "size: must be a whole number"),
    ],
)
def test_bad_answers_are_400_naming_the_field_and_store_nothing(
    app: Flask, client: FlaskClient, field: str, value: str, complaint: str
) -> None:
    response = client.post("/installs", data=answers(client, **{field: value}))
    assert response.status_code == 400
    assert f'data-field="{field}"' in response.text
    assert complaint in response.get_data(as_text=True).replace("&#39;", "'")
    assert stored(app) == []


def test_missing_or_repeated_fields_are_400(app: Flask, client: FlaskClient) -> None:
    form = answers(client)
    del form["image"]
    response = client.post("/installs", data=form)
    assert response.status_code == 400
    assert "image: required" in response.text
    twice = MultiDict([*answers(client).items(), ("cluster_name", "other")])
    response = client.post("/installs", data=twice)
    assert response.status_code == 400
    assert "cluster_name: given more than once" in response.text
    assert stored(app) == []


def test_an_oversized_field_is_413_naming_it(app: Flask, client: FlaskClient) -> None:
    response = client.post("/installs", data=answers(client, cluster_name="x" * 300))
    assert response.status_code == 413
    assert "cluster_name: longer than 256 characters" in response.text
    assert stored(app) == []


def test_an_oversized_request_is_413(app: Flask, client: FlaskClient) -> None:
    response = client.post("/installs", data=answers(client, ssh_keys="A" * 300_000))
    assert response.status_code == 413
    assert "request body: larger than 256 KiB" in response.text
    assert stored(app) == []


def test_a_document_over_64_kib_is_413_and_not_stored(app: Flask, client: FlaskClient) -> None:
    keys = "\n".join(rsa_line(16384, "k" * 200) for _ in range(22))
    assert len(keys) <= 64 * 1024
    response = client.post("/installs", data=answers(client, ssh_keys=keys))
    assert response.status_code == 413
    assert "document: " in response.text
    assert "over the 64 KiB" in response.text
    assert stored(app) == []


def test_hostile_comment_in_an_accepted_key_stays_inside_its_string(client: FlaskClient) -> None:
    evil = ed25519_line("x\" #{{ 7*7 }}': [a, b] ]} runcmd: - reboot")
    token = create(client, ssh_keys=evil)
    document = yaml.safe_load(client.get(f"/cloud-config/{read_token(token)}").text)
    assert document["ssh_authorized_keys"] == [evil]
    assert set(document) == {
        "ssh_authorized_keys",
        "package_update",
        "packages",
        "write_files",
        "runcmd",
    }


def test_concurrent_creates_each_get_their_own_install(app: Flask) -> None:
    clients = [app.test_client() for _ in range(8)]
    forms = [answers(c, cluster_name=f"c{i}") for i, c in enumerate(clients)]
    tokens: list[str | None] = [None] * len(clients)
    start = threading.Barrier(len(clients))

    def submit(i: int) -> None:
        start.wait()
        response = clients[i].post("/installs", data=forms[i])
        if response.status_code == 303:
            tokens[i] = response.headers["Location"].rsplit("/", 1)[1]

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(tokens), tokens
    assert len(set(tokens)) == len(clients)
    assert sorted(i.cluster_name for i in stored(app)) == sorted(f"c{i}" for i in range(8))
    for i, token in enumerate(tokens):
        served = clients[0].get(f"/cloud-config/{read_token(token)}").text
        assert f"VULCANO_CLUSTER_NAME=c{i}\n" in served


def test_ndb_context_is_there_for_direct_reads(ndb_context: ndb.Context) -> None:
    assert Install.query().fetch() == []
