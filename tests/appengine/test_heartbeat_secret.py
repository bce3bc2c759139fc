"""The reporting secret: drawn per install, stored hashed, and carried in the provisioning
user-data as a 0600 file (copied 0600 into the state dir), in every flavour, on no unit
line; the copy the served document holds is the one that reports."""

from __future__ import annotations

import json
import shutil
from urllib.parse import unquote

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from appengine.models import Install, provisioner_token, read_token
from appengine.reporting import secret_hash
from tests.appengine.heartbeat_helpers import post, reporting_install, summary
from tests.appengine.test_provisioner_token import KEY, TOKEN, URL, files_and_unit
from tests.conftest import require
from vulcano import cloudconfig, image, validators
from vulcano.sshkeys import parse_keys

SECRET = "a" * 64 + "." + "Rp0-Sec_" + "y" * 35


def spec(flavour: str, report: str = SECRET) -> cloudconfig.ProvisionerSpec:
    return cloudconfig.ProvisionerSpec(
        "prod", tuple(parse_keys(KEY)), flavour, image.REFERENCE, 3, URL, TOKEN, report
    )


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_the_secret_is_a_0600_file_and_on_no_unit_line(flavour: str) -> None:
    document = cloudconfig.render_provisioner(spec(flavour))
    files, unit = files_and_unit(document)
    mode, content = files[cloudconfig.REPORT_TOKEN_HOST_PATH]
    assert content == SECRET and mode in {"0600", "0o600"}
    assert SECRET not in unit and SECRET.split(".")[1] not in unit
    lines = unit.splitlines()
    report_file = f"{image.STATE_DIR}/{cloudconfig.REPORT_TOKEN_NAME}"
    assert f"Environment=VULCANO_REPORT_TOKEN_FILE={report_file}" in lines
    copy = (
        f"ExecStartPre=/usr/bin/install -o {image.USER_ID} -g {image.USER_ID} -m 0600 "
        f"{cloudconfig.REPORT_TOKEN_HOST_PATH} {report_file}"
    )
    assert copy in lines
    assert "  --env VULCANO_REPORT_TOKEN_FILE \\" in lines
    # the only places it stands: its file's content (and, in Ignition, its data URL)
    assert document.text.count(SECRET.split(".")[1]) == 1


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_without_a_secret_the_document_has_no_report_file(flavour: str) -> None:
    document = cloudconfig.render_provisioner(spec(flavour, report=""))
    files, unit = files_and_unit(document)
    assert cloudconfig.REPORT_TOKEN_HOST_PATH not in files
    assert "VULCANO_REPORT_TOKEN_FILE" not in unit


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_the_real_validators_accept_each_flavour_with_the_secret(flavour: str) -> None:
    tool = "ignition-validate" if flavour == "flatcar" else "cloud-init"
    require(shutil.which(tool) is not None, f"needs Debian's {tool}")
    assert validators.validate_with_tools(cloudconfig.render_provisioner(spec(flavour)), True)


@pytest.mark.parametrize(
    ("url", "token", "report"),
    [("", "", SECRET), (URL, TOKEN, "short"), (URL, TOKEN, SECRET + "\n"), (URL, TOKEN, "a b" * 9)],
)
def test_a_bad_secret_is_refused_by_name(url: str, token: str, report: str) -> None:
    bad = cloudconfig.ProvisionerSpec(
        "prod", tuple(parse_keys(KEY)), "cloud-init", image.REFERENCE, 3, url, token, report
    )
    with pytest.raises(cloudconfig.InputError) as refused:
        cloudconfig.render_provisioner(bad)
    assert refused.value.field == "report_token"


def _served_secret(client: FlaskClient, manage: str, flavour: str) -> str:
    served = client.get(f"/cloud-config/{read_token(manage)}").text
    path = cloudconfig.REPORT_TOKEN_HOST_PATH
    if flavour == "flatcar":
        files = {f["path"]: f for f in json.loads(served)["storage"]["files"]}
        assert files[path]["mode"] == 0o600
        return unquote(files[path]["contents"]["source"].split(",", 1)[1])
    files = {f["path"]: f for f in yaml.safe_load(served)["write_files"]}
    assert files[path]["permissions"] == "0600"
    return str(files[path]["content"])


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_the_served_documents_secret_reports_for_its_install(
    client: FlaskClient, flavour: str
) -> None:
    from tests.appengine.test_installs import create

    manage = create(client, flavour=flavour)
    secret = _served_secret(client, manage, flavour)
    assert post(client, secret, summary(1)).status_code == 200


def test_each_install_draws_its_own_secret_and_stores_only_its_hash(
    app: Flask, client: FlaskClient
) -> None:
    (one, secret_one), (two, secret_two) = reporting_install(client), reporting_install(client)
    assert secret_one != secret_two
    for manage, secret in ((one, secret_one), (two, secret_two)):
        install_id, _, part = secret.partition(".")
        assert part not in {manage, read_token(manage), provisioner_token(read_token(manage))}
        with app.extensions["ndb_client"].context():
            install = Install.get_by_token(manage)
            assert install.key.id() == install_id
            assert install.report_hash == secret_hash(part)
            stored = {k: v for k, v in install.to_dict().items() if k != "document"}
        assert part not in repr(stored)
    # one install's secret does not report for the other
    assert (
        post(
            client, secret_one.split(".")[0] + "." + secret_two.split(".")[1], summary(1)
        ).status_code
        == 401
    )
