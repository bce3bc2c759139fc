"""No token or secret the installer makes reaches its log, a page or an API answer.

The installer runs under real gunicorn (its access log on, as on App Engine) against the
real Datastore emulator, with no signing key configured, so it makes its own. One run
goes through an install's whole life; then the log, and every answer except the ones
that hand a secret to its owner, are searched for every secret the run made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from google.cloud import datastore as datastore_api

from appengine.models import provisioner_token, read_token
from appengine.signing_key import SIGNING_KEY_KIND
from tests.appengine.heartbeat_helpers import summary
from tests.appengine.test_installs import KEY
from vulcano import cloudconfig
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.services import DatastoreEmulator

TIMEOUT = 10
_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Recorder:
    """Every answer the run got, each marked as a hand-out (to its owner) or not."""

    server: InstallerServer
    session: requests.Session = field(default_factory=requests.Session)
    answers: list[tuple[str, str]] = field(default_factory=list)
    handouts: list[tuple[str, str]] = field(default_factory=list)

    def request(
        self, method: str, path: str, *, handout: bool = False, **kwargs: object
    ) -> requests.Response:
        answer = self.session.request(
            method, self.server.url + path, timeout=TIMEOUT, allow_redirects=False, **kwargs
        )
        seen = f"{answer.status_code}\n{answer.headers}\n{answer.text}"  # not what was asked
        (self.handouts if handout else self.answers).append((f"{method} {path}", seen))
        return answer

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on ``path`` (the install page is a hand-out)."""
        match = _CSRF_RE.search(self.request("GET", path, handout=path != "/").text)
        assert match, f"no csrf_token on {path}"
        return match.group(1)


@pytest.fixture
def server(datastore: DatastoreEmulator, tmp_path: Path) -> Iterator[InstallerServer]:
    """gunicorn with no VULCANO_SECRET_KEY: the installer makes and keeps its own."""
    with installer_server(
        datastore,
        tmp_path / "gunicorn.log",
        workers=2,
        threads=2,
        validate="off",
        env_extra={"VULCANO_SECRET_KEY": ""},
    ) as running:
        yield running


def _stored_signing_key(emulator: DatastoreEmulator) -> str:
    client = datastore_api.Client(project=emulator.project)
    [entity] = list(client.query(kind=SIGNING_KEY_KIND).fetch())
    value: str = entity["value"]
    return value


def test_no_secret_reaches_the_log_a_page_or_an_answer(
    server: InstallerServer, datastore: DatastoreEmulator
) -> None:
    run = Recorder(server)
    form = {
        "csrf_token": run.csrf("/"),
        "cluster_name": "hush",
        "ssh_keys": KEY,
        "flavour": "cloud-init",
        "image": "ghcr.io/vulcano/provisioner:1.0",
        "size": "3",
    }
    # The answer that names the manage token is the redirect to the install's page.
    made = run.request("POST", "/installs", data=form, handout=True)
    assert made.status_code == 303, made.text
    manage = made.headers["Location"].rsplit("/", 1)[1]
    permalink = read_token(manage)
    provisioner = provisioner_token(permalink)
    # The install page hands out the manage and read tokens and the document.
    page = run.request("GET", f"/installs/{manage}", handout=True)
    assert page.status_code == 200 and permalink in page.text
    # The permalink hands the document (provisioner token, reporting secret) to the machine.
    document = run.request("GET", f"/cloud-config/{permalink}", handout=True)
    files = {f["path"]: f["content"] for f in yaml.safe_load(document.text)["write_files"]}
    reporting = files[cloudconfig.REPORT_TOKEN_HOST_PATH].strip()
    assert provisioner in document.text

    # A browser following the page's link sends it as Referer (same origin): logged too.
    referer = {"Referer": f"{server.url}/installs/{manage}"}
    status = run.request("GET", f"/status/{permalink}", headers=referer)
    assert status.status_code == 200 and "hush" in status.text
    # The wrong token for a page, a lookup of nothing: refusals that must not echo it.
    assert run.request("GET", f"/installs/{permalink}").status_code == 404
    lookup = run.request("POST", "/lookup", data={"token": permalink, "csrf_token": run.csrf("/")})
    assert lookup.status_code == 404
    run.request("GET", f"/status/{permalink}?range=week")

    # Discovery URLs: the page's button, the provisioner's bearer, and an anonymous one.
    # Its answer is a redirect back to the install's page, named by the manage token.
    button = run.request(
        "POST",
        f"/installs/{manage}/discovery",
        data={"size": "1", "csrf_token": run.csrf(f"/installs/{manage}")},
        handout=True,
    )
    assert button.status_code == 303
    shown = run.request("GET", f"/installs/{manage}", handout=True).text
    [from_page] = set(re.findall(r"/discovery/([0-9a-f]{32})", shown))
    bearer = {"Authorization": f"Bearer {provisioner}"}
    for_provisioner = run.request("GET", "/new?size=1", headers=bearer, handout=True)
    anonymous = run.request("GET", "/new?size=3", handout=True)
    discovery = [from_page, *(a.text.rsplit("/", 1)[1] for a in (for_provisioner, anonymous))]
    # etcd's own requests: the v2 answers name the key asked for, token included (etcd's
    # client reads it), so they are handed to the token's holder; errors are not.
    for token in discovery:
        run.request("GET", f"/discovery/{token}/_config/size", handout=True)
        run.request("GET", f"/discovery/{token}?recursive=false", handout=True)
        put = run.request(
            "PUT",
            f"/discovery/{token}/8e9e05c52164694d?prevExist=false",
            data={"value": "one=http://10.0.0.1:2380"},
            handout=True,
        )
        assert put.status_code == 201, put.text
        again = run.request(
            "PUT",
            f"/discovery/{token}/8e9e05c52164694d?prevExist=false",
            data={"value": "one=http://10.0.0.1:2380"},
        )
        assert again.status_code == 412

    beat = run.request(
        "POST",
        "/api/heartbeat",
        data=summary(1, cluster="hush").to_json(),
        headers={"Authorization": f"Bearer {reporting}", "Content-Type": "application/json"},
    )
    assert beat.status_code == 200, beat.text
    assert run.request("GET", f"/status/{permalink}").status_code == 200

    # Refusals must not echo what they refused.
    forged = reporting[:-4] + "AAAA"
    refused = run.request(
        "POST", "/api/heartbeat", data="{}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401
    wrong_bearer = run.request("GET", "/new", headers={"Authorization": f"Bearer {manage}"})
    assert wrong_bearer.status_code == 401

    deleted = run.request(
        "POST", f"/installs/{manage}/delete", data={"csrf_token": run.csrf(f"/installs/{manage}")}
    )
    assert deleted.status_code == 303
    assert run.request("GET", deleted.headers["Location"]).status_code == 200
    assert run.request("GET", f"/installs/{manage}").status_code == 404
    assert run.request("GET", f"/cloud-config/{permalink}").status_code == 404
    assert run.request("GET", f"/status/{permalink}").status_code == 404
    for token in discovery[:2]:
        assert run.request("GET", f"/discovery/{token}/_config/size").status_code == 404

    secrets_made = {
        "manage token": manage,
        "read token": permalink,
        "provisioner token": provisioner,
        "reporting secret": reporting,
        "reporting secret's secret part": reporting.split(".", 1)[1],
        "forged reporting secret": forged.split(".", 1)[1],
        "signing key": _stored_signing_key(datastore),
        **{f"discovery token {i}": token for i, token in enumerate(discovery)},
    }
    log = server.log()
    assert "GET /installs/" in log and "PUT /discovery/" in log  # the access log is on
    leaks = [
        f"{name} in {where}"
        for name, secret in secrets_made.items()
        for where, text in [("the log", log), *run.answers]
        if secret in text
    ]
    assert leaks == []
    # The search does find a secret where one is: each is in the answer that handed it out.
    handed = [manage, permalink, provisioner, reporting, *discovery]
    assert [any(s in text for _, text in run.handouts) for s in handed] == [True] * len(handed)
    assert '"GET /status/<token> HTTP/1.1" 200' in log  # redacted, Referer included
