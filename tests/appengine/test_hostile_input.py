"""Hostile strings in every field never change a document's structure.

Each answer is either refused with a 400/413 naming its field (and nothing is stored),
or accepted, in which case the parsed document has exactly the shape of a document made
from harmless answers: no key, list item or unit-file line was gained.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from appengine import create_app
from appengine.models import Install, read_token
from tests.appengine.conftest import TEST_SECRET_KEY, csrf_token
from vulcano import cloudconfig
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.sshkeys import ed25519_line
from vulcano.sshkeys import SSHKeyError, parse_keys

# Pieces of YAML, JSON, Jinja, shell and systemd syntax, and characters that break lines.
FRAGMENTS = [
    "\n",
    "\r\n",
    "\r",
    "\x85",
    "\u2028",
    "\u2029",
    "\x00",
    "\t",
    "\ufeff",
    "\x7f",
    '"',
    "'",
    "`",
    "\\",
    "#",
    "# ",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "${HOME}",
    "%h",
    "$(",
    ": ",
    ":",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a",
    "*a",
    "!!python/object:os.system",
    "---",
    "...",
    "|",
    ">",
    "?",
    "@",
    "runcmd:",
    "ssh_authorized_keys:",
    "coreos:",
    "\nruncmd: [reboot]",
    '", "evil": "',
    "\nExecStartPre=/bin/sh -c reboot\n",
    "[Service]",
    "=",
    ";",
    "a",
    "prod",
    "1",
    "ssh-ed25519",
    "AAAA",
    " ",
]
hostile = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), min_size=1, max_size=12
).map("".join)

GOOD = {
    "cluster_name": "prod",
    "ssh_keys": ed25519_line("alice"),
    "image": "ghcr.io/vulcano/provisioner:1.0",
    "size": "3",
}
FIELDS = ["cluster_name", "ssh_keys", "ssh_key_comment", "flavour", "image", "size"]


def parse(text: str, flavour: str) -> Any:
    if flavour == "flatcar":
        return json.loads(text)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def baseline_shape(flavour: str) -> Any:
    spec = cloudconfig.ProvisionerSpec(
        cluster_name="prod",
        ssh_keys=tuple(parse_keys(GOOD["ssh_keys"])),
        flavour=flavour,
        image=GOOD["image"],
        size=3,
        # as the app fills them in: its own URL, the install's provisioner token and its
        # reporting secret
        installer_url="http://localhost",
        installer_token="x" * 43,
        report_token="0" * 64 + "." + "x" * 43,
    )
    return cloudconfig.shape(cloudconfig.render_provisioner(spec).data)


def count_installs(app: Flask) -> int:
    with app.extensions["ndb_client"].context():
        return int(Install.query().count())


@pytest.fixture
def fast_app(datastore: DatastoreEmulator) -> Flask:
    # The real validators are proven in test_cloudconfig and test_installs; here they would
    # only slow hundreds of examples down. The parse-and-shape check still runs each time.
    return create_app(
        {"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "VALIDATE_WITH_TOOLS": False}
    )


@pytest.mark.slow
@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
@pytest.mark.parametrize("field", FIELDS)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=hostile)
@example(value=" \n#")  # a comment that ends the line and starts a '#' line
def test_hostile_answers_are_refused_by_name_or_change_no_structure(
    fast_app: Flask, field: str, flavour: str, value: str
) -> None:
    client: FlaskClient = fast_app.test_client()
    form = {**GOOD, "flavour": flavour, "csrf_token": csrf_token(client)}
    if field == "ssh_key_comment":
        form["ssh_keys"] = GOOD["ssh_keys"] + " " + value
    else:
        form[field] = value
    before = count_installs(fast_app)
    response = client.post("/installs", data=form)
    event(f"HTTP {response.status_code}")
    if response.status_code in (400, 413):
        named = "ssh_keys" if field == "ssh_key_comment" else field
        assert f'data-field="{named}"' in response.text
        assert count_installs(fast_app) == before
        return
    assert response.status_code == 303, response.text
    token = response.headers["Location"].rsplit("/", 1)[1]
    served = client.get(f"/cloud-config/{read_token(token)}")
    document = parse(served.text, flavour)
    assert cloudconfig.shape(document) == baseline_shape(flavour)
    if field == "ssh_key_comment":
        keys = (
            document["passwd"]["users"][0]["sshAuthorizedKeys"]
            if flavour == "flatcar"
            else (document["ssh_authorized_keys"])
        )
        # A newline in the comment starts a new line of the textarea; the only lines that can
        # pass are blank ones and '#' comment lines, which authorized_keys ignores too.
        pasted = [line.strip() for line in (GOOD["ssh_keys"] + " " + value).splitlines()]
        assert keys == [line for line in pasted if line and not line.startswith("#")]


@settings(max_examples=300, deadline=None)
@given(
    flavour=st.sampled_from(list(cloudconfig.FLAVOURS)),
    name=hostile,
    image=hostile,
    comment=hostile,
    size=st.integers(min_value=-5, max_value=200),
)
def test_renderer_refuses_by_field_or_keeps_the_template_shape(
    flavour: str, name: str, image: str, comment: str, size: int
) -> None:
    try:
        keys = tuple(parse_keys(GOOD["ssh_keys"] + " " + comment))
        spec = cloudconfig.ProvisionerSpec(name, keys, flavour, image, size)
        document = cloudconfig.render_provisioner(spec)
    except cloudconfig.InputError as exc:
        assert exc.field in {"cluster_name", "image", "size"}
        return
    except SSHKeyError:
        return
    reparsed = parse(document.text, flavour)
    assert reparsed == document.data
    assert cloudconfig.shape(reparsed) == baseline_shape(flavour)
