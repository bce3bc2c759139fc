"""Hostile input to the provisioning machine's user-data, the way the installer makes it:
the install form's values (appengine/forms.py) and what the app adds (its URL, the
install's tokens) → templates/cloud-config/provisioner.*. Each input gives a document
whose every value is exactly where it belongs, once, or the error naming the field.

Pure (no Datastore): the form reader and the renderer are the app's own functions; the
HTTP path is tests/appengine/test_hostile_input.py's. Budgets (derandomized:
tests/conftest.py): 600 forms (one hostile field each, every flavour), 300 installer
values, 60 forms at the field limits. Size limits: the form's per-field limits
(forms.FIELD_MAX_CHARS: name 256, keys 64 KiB, flavour 64, image 1024, size 16
characters) and the document's 64 KiB; time at those limits: bench/hostile_inputs.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from appengine.forms import FIELD_MAX_CHARS, FormError, read_install_form
from tests.vulcano.hostile_values import hostile
from vulcano import cloudconfig, sshkeys
from vulcano.cloudconfig import (
    INSTALLER_TOKEN_HOST_PATH,
    REPORT_TOKEN_HOST_PATH,
    Document,
    DocumentTooLarge,
    InputError,
    ProvisionerSpec,
    render_provisioner,
)
from vulcano.lab.sshkeys import ed25519_line, rsa_line

GOOD = {
    "cluster_name": "prod",
    "ssh_keys": ed25519_line("alice") + "\n" + rsa_line(2048, "bob"),
    "flavour": "cloud-init",
    "image": "ghcr.io/vulcano/provisioner:1.0",
    "size": "3",
}
# What the app adds to every install (appengine/installs.py): its URL and two secrets.
ADDED = {
    "installer_url": "https://vulcano.example",
    "installer_token": "t" * 43,
    "report_token": "0" * 64 + "." + "r" * 43,
}
FLAVOURS = list(cloudconfig.FLAVOURS)


def reparse(text: str, flavour: str) -> Any:
    if flavour == "flatcar":
        return json.loads(text)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def unit_of(data: Any, flavour: str) -> str:
    if flavour == "cloud-init":
        (f,) = [f for f in data["write_files"] if f["path"].endswith("vulcano-provisioner.service")]
        return str(f["content"])
    units = data["systemd"]["units"] if flavour == "flatcar" else data["coreos"]["units"]
    (u,) = [u for u in units if u["name"] == "vulcano-provisioner.service"]
    return str(u["contents"] if flavour == "flatcar" else u["content"])


def keys_of(data: Any, flavour: str) -> list[str]:
    if flavour == "flatcar":
        return list(data["passwd"]["users"][0]["sshAuthorizedKeys"])
    return list(data["ssh_authorized_keys"])


def file_of(data: Any, path: str) -> str:
    for f in data.get("write_files", []):
        if f["path"] == path:
            return str(f["content"])
    for f in data.get("storage", {}).get("files", []):
        if f["path"] == path:
            source = str(f["contents"]["source"])
            assert source.startswith("data:,")
            return unquote(source.removeprefix("data:,"))
    raise AssertionError(f"no {path} in the document")


def benign_shape(spec: ProvisionerSpec) -> Any:
    """The shape of a document of benign values with as many keys and the same parts."""
    key = cloudconfig.PublicKey(type="ssh-ed25519", blob=b"", comment="", bits=256)
    benign = replace(
        spec,
        cluster_name="b",
        image="b/b:1",
        size=1,
        ssh_keys=tuple(key for _ in spec.ssh_keys),
        installer_url="http://b" if spec.installer_url else "",
        installer_token="b" * 16 if spec.installer_token else "",
        report_token="b" * 16 if spec.report_token else "",
    )
    return cloudconfig.shape(reparse(cloudconfig._render_text(benign), spec.flavour))


def check_document(spec: ProvisionerSpec, document: Document) -> None:
    """Every value exactly where it belongs, once; nothing else changed."""
    assert document.size <= cloudconfig.MAX_DOCUMENT_BYTES
    data = reparse(document.text, spec.flavour)
    assert data == document.data
    assert cloudconfig.shape(data) == benign_shape(spec)
    unit = unit_of(data, spec.flavour).splitlines()
    assert unit.count(f"Environment=VULCANO_CLUSTER_NAME={spec.cluster_name}") == 1
    assert unit.count(f"Environment=VULCANO_IMAGE={spec.image}") == 1
    assert unit.count(f"Environment=VULCANO_CLUSTER_SIZE={spec.size}") == 1
    if spec.installer_url:
        assert unit.count(f"Environment=VULCANO_INSTALLER_URL={spec.installer_url}") == 1
        assert file_of(data, INSTALLER_TOKEN_HOST_PATH) == spec.installer_token
        assert spec.installer_token not in "\n".join(unit)  # a secret on no unit line
    if spec.report_token:
        assert file_of(data, REPORT_TOKEN_HOST_PATH) == spec.report_token
        assert spec.report_token not in "\n".join(unit)
    assert keys_of(data, spec.flavour) == [k.line for k in spec.ssh_keys]


def make(form: dict[str, str], added: dict[str, str]) -> str:
    """The installer's path from form to document; the outcome's name."""
    try:
        spec = replace(read_install_form(MultiDict(form)), **added)
        document = render_provisioner(spec)
    except FormError as exc:
        assert exc.status in (400, 413) and exc.message.strip()
        return f"refused {exc.field}"
    except InputError as exc:
        assert exc.field in added, exc  # the app's own values are checked by name too
        return f"refused {exc.field}"
    except DocumentTooLarge:
        return "too large"
    check_document(spec, document)
    return "rendered"


FORM_FIELDS = [*GOOD, "ssh_key_comment", "ssh_key_line"]


def with_form_value(form: dict[str, str], field: str, value: str) -> dict[str, str]:
    if field == "ssh_key_comment":
        return {**form, "ssh_keys": ed25519_line("alice") + " " + value}
    if field == "ssh_key_line":  # a hostile line among good ones
        return {**form, "ssh_keys": GOOD["ssh_keys"] + "\n" + value}
    return {**form, field: value}


@settings(max_examples=600)
@given(
    field=st.sampled_from(FORM_FIELDS),
    data=st.data(),
    flavour=st.sampled_from(FLAVOURS),
)
def test_install_forms_make_user_data_with_every_value_in_place_or_name_the_field(
    field: str, data: st.DataObject, flavour: str
) -> None:
    valid = GOOD.get(field, "alice")
    value = data.draw(hostile(valid), label=field)
    form = with_form_value({**GOOD, "flavour": flavour}, field, value)
    outcome = make(form, ADDED)
    event(f"{field}: {outcome}")
    if outcome.startswith("refused"):
        named = "ssh_keys" if field.startswith("ssh_key") else field
        assert outcome == f"refused {named}"


@settings(max_examples=300)
@given(
    field=st.sampled_from(list(ADDED)),
    data=st.data(),
    flavour=st.sampled_from(FLAVOURS),
)
def test_the_installers_own_values_are_checked_by_name_too(
    field: str, data: st.DataObject, flavour: str
) -> None:
    value = data.draw(hostile(ADDED[field]), label=field)
    outcome = make({**GOOD, "flavour": flavour}, {**ADDED, field: value})
    event(f"{field}: {outcome}")
    if outcome.startswith("refused"):
        # the URL and its token go together: either may be the one named
        assert outcome.split()[1] in ({field} | ({"installer_token"} if value == "" else set()))


@settings(max_examples=60)
@given(
    field=st.sampled_from(list(FIELD_MAX_CHARS)),
    extra=st.sampled_from([-1, 0, 1]),
    flavour=st.sampled_from(FLAVOURS),
)
def test_form_values_at_their_limits_fit_or_are_refused_as_too_long(
    field: str, extra: int, flavour: str
) -> None:
    limit = FIELD_MAX_CHARS[field]
    if field == "ssh_keys":  # the most keys a paste takes, comment lines up to the limit
        value = "\n".join(rsa_line(4096, f"k{i}") for i in range(sshkeys.MAX_KEYS))
        value += "\n" + "#" * (limit - len(value) - 1 + extra)
    else:
        value = (GOOD[field] + " " * limit)[: limit + extra]
    form = with_form_value({**GOOD, "flavour": flavour}, field, value)
    try:
        read_install_form(MultiDict(form))
        status = 200
    except FormError as exc:
        assert exc.field == field
        status = exc.status
    outcome = make(form, ADDED)
    event(f"{field} {limit + extra}: {outcome} ({status})")
    if extra > 0:
        assert status == 413  # too long, before any parsing
    else:
        assert status != 413  # padded with spaces: only the flavour (not stripped) is refused
        assert outcome in ("rendered", "too large") or outcome == "refused flavour"


def test_the_property_fails_on_a_value_out_of_its_place() -> None:
    spec = replace(read_install_form(MultiDict(GOOD)), **ADDED)
    document = render_provisioner(spec)
    with pytest.raises(AssertionError):
        check_document(replace(spec, image="ghcr.io/vulcano/other:1.0"), document)
