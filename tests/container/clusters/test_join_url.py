"""The URL a node `#include`s: the panel's /join/<cluster>/<node>, guarded by the
cluster's join token (hashed in the database, expiring, revocable), with no login."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from container.panel import create_app
from container.services.provisioning import ProvisioningSettings
from container.store import DATABASE_NAME
from tests.conftest import require
from tests.container.clusters.conftest import Invoke, rows
from vulcano import validators

TOKEN_RE = re.compile(r"^token (\S+)$", re.MULTILINE)
ENROL_TOKEN_RE = re.compile(r"(?<=enrol_token=')[A-Za-z0-9_-]+")


@pytest.fixture
def panel(state_dir: Path) -> FlaskClient:
    settings = ProvisioningSettings("prod", 3, state_dir)
    return create_app({"TESTING": True}, settings=settings).test_client()


def issue(vulcano: Invoke, *args: str) -> str:
    result = vulcano("cluster", "join-token", "prod", *args)
    assert result.exit_code == 0, result.output
    match = TOKEN_RE.search(result.output)
    assert match, result.output
    return match.group(1)


@pytest.fixture
def made(vulcano: Invoke) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "3").exit_code == 0


@pytest.mark.usefixtures("made")
def test_the_join_url_serves_the_nodes_user_data(
    vulcano: Invoke, panel: FlaskClient, state_dir: Path
) -> None:
    token = issue(vulcano, "--panel-url", "http://10.0.0.2:8080")
    printed = vulcano("cluster", "user-data", "prod", "--node", "2").output
    served = panel.get(f"/join/prod/2?token={token}")
    assert served.status_code == 200
    # Node 2 is a TLS member whose address is found at boot: each rendering carries an
    # enrolment token of its own, and is the same document otherwise.
    tokens = [ENROL_TOKEN_RE.findall(text) for text in (served.text, printed)]
    assert [len(found) for found in tokens] == [1, 1] and tokens[0] != tokens[1]
    assert ENROL_TOKEN_RE.sub("", served.text) == ENROL_TOKEN_RE.sub("", printed)
    assert served.headers["Content-Type"].startswith("text/cloud-config")
    assert served.headers["Cache-Control"] == "no-store"
    # only a hash of the token is kept
    [row] = rows(state_dir)
    assert token not in str(row) and len(row["join_token_hash"]) == 64


@pytest.mark.usefixtures("made")
def test_the_printed_include_names_the_panels_url(vulcano: Invoke) -> None:
    result = vulcano("cluster", "join-token", "prod", "--panel-url", "http://10.0.0.2:8080/")
    token = TOKEN_RE.search(result.output)
    assert token
    assert f"#include http://10.0.0.2:8080/join/prod/N?token={token.group(1)}" in result.output


@pytest.mark.usefixtures("made")
def test_a_wrong_or_missing_token_serves_nothing(vulcano: Invoke, panel: FlaskClient) -> None:
    issue(vulcano)
    for url in ("/join/prod/1?token=wrong", "/join/prod/1", "/join/nosuch/1?token=x"):
        answer = panel.get(url)
        assert answer.status_code == 403, url
        assert answer.text == "token: no such cluster, or a wrong token\n"
        assert "#cloud-config" not in answer.text


@pytest.mark.usefixtures("made")
def test_no_token_at_all_until_one_is_made(panel: FlaskClient) -> None:
    assert panel.get("/join/prod/1?token=").status_code == 403


@pytest.mark.usefixtures("made")
def test_a_new_token_replaces_the_old_and_revoke_ends_it(
    vulcano: Invoke, panel: FlaskClient
) -> None:
    old = issue(vulcano)
    new = issue(vulcano)
    assert panel.get(f"/join/prod/1?token={old}").status_code == 403
    assert panel.get(f"/join/prod/1?token={new}").status_code == 200
    assert vulcano("cluster", "join-token", "prod", "--revoke").exit_code == 0
    assert panel.get(f"/join/prod/1?token={new}").status_code == 403


@pytest.mark.usefixtures("made")
def test_an_expired_token_says_how_to_get_a_new_one(
    vulcano: Invoke, panel: FlaskClient, state_dir: Path
) -> None:
    token = issue(vulcano, "--ttl", "60")
    conn = sqlite3.connect(state_dir / DATABASE_NAME)
    with conn:  # an hour later, as far as the token is concerned
        conn.execute("UPDATE clusters SET join_token_expires = ?", (time.time() - 1,))
    conn.close()
    answer = panel.get(f"/join/prod/1?token={token}")
    assert answer.status_code == 403
    assert "expired; make a new one with vulcano cluster join-token prod" in answer.text
    shown = vulcano("cluster", "show", "prod", "--json").output
    assert '"join_token": "expired"' in shown


@pytest.mark.usefixtures("made")
def test_a_node_the_cluster_lacks_is_a_404(vulcano: Invoke, panel: FlaskClient) -> None:
    token = issue(vulcano)
    answer = panel.get(f"/join/prod/4?token={token}")
    assert answer.status_code == 404
    assert "has nodes 1 to 3, not 4" in answer.text


@pytest.mark.usefixtures("made")
def test_what_the_join_url_serves_is_valid_cloud_config(
    vulcano: Invoke, panel: FlaskClient
) -> None:
    from vulcano.cloudconfig import Document, parse

    token = issue(vulcano)
    text = panel.get(f"/join/prod/3?token={token}").text
    document = Document("cloud-init", text, "text/cloud-config", parse(text, "cloud-init"))
    # required: in CI a missing validator fails the test instead of passing it untried
    require(validators.validator_available("cloud-init"), "needs cloud-init's schema check")
    assert validators.validate_with_tools(document, required=True)


def test_a_flatcar_cluster_gets_an_ignition_include(vulcano: Invoke) -> None:
    assert vulcano("cluster", "create", "fc", "--size", "1", "--flavour", "flatcar").exit_code == 0
    result = vulcano("cluster", "join-token", "fc", "--panel-url", "http://p:8080")
    include = next(line for line in result.output.splitlines() if line.startswith("include "))
    config = json.loads(include.split(" ", 1)[1])
    source = config["ignition"]["config"]["replace"]["source"]
    assert source.startswith("http://p:8080/join/fc/N?token=")


def test_an_agent_only_node_before_its_members_is_a_409(
    vulcano: Invoke, panel: FlaskClient
) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "2").exit_code == 0
    token = issue(vulcano)
    answer = panel.get(f"/join/prod/2?token={token}")
    assert answer.status_code == 409
    assert "joins as an agent-only node" in answer.text


@pytest.mark.usefixtures("made")
def test_a_token_serves_each_node_to_one_address_only(vulcano: Invoke, panel: FlaskClient) -> None:
    """cloud-init writes the URL (token and all) to the node's own log: the token serves
    each node once, to one address, so the logged URL replays nowhere else."""
    token = issue(vulcano)
    here, there = {"REMOTE_ADDR": "10.0.0.7"}, {"REMOTE_ADDR": "10.0.0.9"}
    assert panel.get(f"/join/prod/2?token={token}", environ_base=here).status_code == 200
    # a retry from the node's address is served again
    assert panel.get(f"/join/prod/2?token={token}", environ_base=here).status_code == 200
    replay = panel.get(f"/join/prod/2?token={token}", environ_base=there)
    assert replay.status_code == 403
    assert replay.text.startswith(
        "token: node 2's user-data was served with this token already, to another address"
    ), replay.text
    assert "vulcano cluster join-token prod" in replay.text
    # another node is another matter; a new token starts afresh
    assert panel.get(f"/join/prod/3?token={token}", environ_base=there).status_code == 200
    again = issue(vulcano)
    assert panel.get(f"/join/prod/2?token={again}", environ_base=there).status_code == 200
