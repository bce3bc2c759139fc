"""The provisioning machine's proof of its install: the provisioner token in its
user-data (a 0600 file, on no unit line), and `GET /new` with it as a bearer token
making a discovery URL tied to the install."""

from __future__ import annotations

import json
import shutil
from urllib.parse import unquote

import pytest
import yaml
from flask.testing import FlaskClient

from appengine.models import provisioner_token, read_token
from tests.appengine.test_installs import create
from tests.conftest import require
from vulcano import cloudconfig, image, validators
from vulcano.lab.sshkeys import ed25519_line
from vulcano.sshkeys import parse_keys

KEY = ed25519_line("alice@laptop")
TOKEN = "Tq0-Vn3r_" + "x" * 34
URL = "https://installer.example"


def spec(flavour: str) -> cloudconfig.ProvisionerSpec:
    return cloudconfig.ProvisionerSpec(
        "prod", tuple(parse_keys(KEY)), flavour, image.REFERENCE, 3, URL, TOKEN
    )


def files_and_unit(document: cloudconfig.Document) -> tuple[dict[str, tuple[str, str]], str]:
    """{path: (mode, content)} of the files the document writes, and the unit's text."""
    data = document.data
    if document.flavour == "flatcar":
        files = {
            f["path"]: (oct(f["mode"]), unquote(f["contents"]["source"].split(",", 1)[1]))
            for f in data["storage"]["files"]
        }
        (unit,) = [u["contents"] for u in data["systemd"]["units"] if "contents" in u]
        return files, unit
    files = {f["path"]: (f["permissions"], f["content"]) for f in data["write_files"]}
    if document.flavour == "coreos-legacy":
        (unit,) = [u["content"] for u in data["coreos"]["units"] if "content" in u]
        return files, unit
    return files, files.pop("/etc/systemd/system/vulcano-provisioner.service")[1]


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_the_token_is_a_0600_file_and_on_no_unit_line(flavour: str) -> None:
    document = cloudconfig.render_provisioner(spec(flavour))
    files, unit = files_and_unit(document)
    mode, content = files[cloudconfig.INSTALLER_TOKEN_HOST_PATH]
    assert content == TOKEN and mode in {"0600", "0o600"}
    assert TOKEN not in unit
    lines = unit.splitlines()
    assert f"Environment=VULCANO_INSTALLER_URL={URL}" in lines
    token_file = f"{image.STATE_DIR}/{cloudconfig.INSTALLER_TOKEN_NAME}"
    assert f"Environment=VULCANO_INSTALLER_TOKEN_FILE={token_file}" in lines
    copy = (
        f"ExecStartPre=/usr/bin/install -o {image.USER_ID} -g {image.USER_ID} -m 0600 "
        f"{cloudconfig.INSTALLER_TOKEN_HOST_PATH} {token_file}"
    )
    assert copy in lines
    assert "  --env VULCANO_INSTALLER_URL --env VULCANO_INSTALLER_TOKEN_FILE \\" in lines


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_the_real_validators_accept_each_flavour_with_the_token(flavour: str) -> None:
    tool = "ignition-validate" if flavour == "flatcar" else "cloud-init"
    require(shutil.which(tool) is not None, f"needs Debian's {tool}")
    assert validators.validate_with_tools(cloudconfig.render_provisioner(spec(flavour)), True)


@pytest.mark.parametrize(
    ("url", "token", "field"),
    [
        (URL, "", "installer_token"),
        ("", TOKEN, "installer_token"),
        ("ftp://x", TOKEN, "installer_url"),
        ("https://x/a b", TOKEN, "installer_url"),
        ("https://x/?q=1", TOKEN, "installer_url"),
        (URL, "short", "installer_token"),
        (URL, "x" * 40 + "\n", "installer_token"),
    ],
)
def test_bad_installer_settings_are_refused_by_name(url: str, token: str, field: str) -> None:
    bad = cloudconfig.ProvisionerSpec(
        "prod", tuple(parse_keys(KEY)), "cloud-init", image.REFERENCE, 3, url, token
    )
    with pytest.raises(cloudconfig.InputError) as refused:
        cloudconfig.render_provisioner(bad)
    assert refused.value.field == field


def test_the_installer_puts_its_url_and_the_installs_token_in_the_document(
    client: FlaskClient,
) -> None:
    manage = create(client)
    served = client.get(f"/cloud-config/{read_token(manage)}").text
    data = yaml.safe_load(served)
    files = {f["path"]: f["content"] for f in data["write_files"]}
    assert files[cloudconfig.INSTALLER_TOKEN_HOST_PATH] == provisioner_token(read_token(manage))
    assert "Environment=VULCANO_INSTALLER_URL=http://localhost\n" in served


def test_new_with_the_token_makes_a_discovery_url_on_the_installs_page(
    client: FlaskClient,
) -> None:
    manage = create(client)
    bearer = {"Authorization": f"Bearer {provisioner_token(read_token(manage))}"}
    answer = client.get("/new?size=3", headers=bearer)
    assert answer.status_code == 200, answer.text
    url = answer.text.strip()
    assert url.startswith("http://localhost/discovery/")
    page = client.get(f"/installs/{manage}").text
    assert url in page
    token = url.rsplit("/", 1)[1]
    size = client.get(f"/discovery/{token}/_config/size")
    assert json.loads(size.text)["node"]["value"] == "3"


@pytest.mark.parametrize(
    "header", ["Bearer " + "A" * 43, "Bearer nope", "Basic Zm9vOmJhcg==", "Bearer"]
)
def test_new_with_a_token_no_install_has_is_refused(client: FlaskClient, header: str) -> None:
    answer = client.get("/new?size=3", headers={"Authorization": header})
    assert answer.status_code == 401
    body = answer.get_json()
    assert body["errorCode"] == 110
    assert "no live install has this provisioner token" in body["cause"]


def test_the_manage_and_read_tokens_are_not_provisioner_tokens(client: FlaskClient) -> None:
    manage = create(client)
    for wrong in (manage, read_token(manage)):
        answer = client.get("/new", headers={"Authorization": f"Bearer {wrong}"})
        assert answer.status_code == 401
