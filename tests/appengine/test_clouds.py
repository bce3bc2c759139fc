"""The install page's one-liners for Azure and DigitalOcean, with the generated file."""

from __future__ import annotations

import html
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from appengine import clouds
from appengine.models import read_token
from tests.appengine.test_installs import KEY, create
from tests.conftest import require
from vulcano.lab.wsgi import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)

CURL_TIMEOUT = 30


def _cloud_commands(page: str) -> dict[str, str]:
    found = re.findall(r'<pre class="cloud-command" id="cloud-(\w+)">(.*?)</pre>', page, re.S)
    return {cloud: html.unescape(text) for cloud, text in found}


@pytest.mark.parametrize(
    ("flavour", "filename"),
    [
        ("cloud-init", "vulcano-prod.yaml"),
        ("flatcar", "vulcano-prod.ign"),
        ("coreos-legacy", "vulcano-prod.yaml"),
    ],
)
def test_the_page_gives_az_and_doctl_lines_with_the_file_and_the_image(
    discovery_client: FlaskClient, flavour: str, filename: str
) -> None:
    manage = create(discovery_client, flavour=flavour)
    page = discovery_client.get(f"/installs/{manage}").text
    lines = _cloud_commands(page)
    assert set(lines) == {"azure", "digitalocean"}
    permalink = f"http://localhost/cloud-config/{read_token(manage)}"

    fetch, create_vm = lines["azure"].split(" && ")
    assert shlex.split(fetch) == ["curl", "-fsSL", permalink, "-o", filename]
    words = shlex.split(create_vm)
    assert words[:3] == ["az", "vm", "create"]
    assert words[words.index("--custom-data") + 1] == filename
    assert words[words.index("--image") + 1] == clouds.AZURE[flavour].image

    fetch, droplet = lines["digitalocean"].split(" && ")
    assert shlex.split(fetch) == ["curl", "-fsSL", permalink, "-o", filename]
    words = shlex.split(droplet)
    assert words[:4] == ["doctl", "compute", "droplet", "create"]
    assert words[words.index("--user-data-file") + 1] == filename
    assert words[words.index("--image") + 1] == clouds.DIGITALOCEAN[flavour].image

    for cloud in (clouds.AZURE[flavour], clouds.DIGITALOCEAN[flavour]):
        assert html.escape(cloud.note, quote=False) in page  # says which image, and why
    assert manage not in "".join(lines.values())
    download = discovery_client.get(f"/cloud-config/{read_token(manage)}?download=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="{filename}"'


def test_the_images_each_flavour_expects() -> None:
    assert clouds.AZURE["cloud-init"].image == "Debian:debian-12:12:latest"
    assert clouds.AZURE["flatcar"].image == "kinvolk:flatcar-container-linux-free:stable:latest"
    assert clouds.DIGITALOCEAN["cloud-init"].image == "debian-12-x64"
    assert "custom image" in clouds.DIGITALOCEAN["flatcar"].note


def test_the_fetch_part_saves_the_generated_document(
    discovery_server: WsgiServer, tmp_path: Path
) -> None:
    require(shutil.which("curl") is not None, "needs curl")
    session = requests.Session()
    front = session.get(discovery_server.url + "/", timeout=10).text
    csrf = front.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    made = session.post(
        discovery_server.url + "/installs",
        data={
            "csrf_token": csrf,
            "cluster_name": "prod",
            "ssh_keys": KEY,
            "flavour": "cloud-init",
            "image": "ghcr.io/vulcano/provisioner:1.0",
            "size": "3",
        },
        timeout=30,
    )
    assert made.status_code == 200, made.text
    fetch = _cloud_commands(made.text)["digitalocean"].split(" && ")[0]
    subprocess.run(shlex.split(fetch), cwd=tmp_path, check=True, timeout=CURL_TIMEOUT)
    manage = made.url.rsplit("/", 1)[1]
    served = session.get(f"{discovery_server.url}/cloud-config/{read_token(manage)}", timeout=10)
    assert (tmp_path / "vulcano-prod.yaml").read_text() == served.text
