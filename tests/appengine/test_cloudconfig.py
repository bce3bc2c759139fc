"""User-data for the provisioning machine: rendered, parsed, checked by the real validators."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jinja2
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import require
from vulcano import cloudconfig, image
from vulcano.cloudconfig import (
    Document,
    DocumentTooLarge,
    InputError,
    InvalidDocument,
    ProvisionerSpec,
    render_provisioner,
)
from vulcano.lab.sshkeys import ed25519_line, rsa_line
from vulcano.sshkeys import parse_keys
from vulcano.validators import validate_with_tools

IMAGE = "registry.example:5000/vulcano/provisioner:1.2"


def spec(flavour: str, keys: str | None = None, **changes: object) -> ProvisionerSpec:
    """A good spec of ``flavour``, with ``changes`` applied."""
    fields: dict[str, object] = dict(
        cluster_name="prod",
        ssh_keys=tuple(parse_keys(keys or ed25519_line("alice") + "\n" + rsa_line(2048, "bob"))),
        flavour=flavour,
        image=IMAGE,
        size=5,
    )
    fields.update(changes)
    return ProvisionerSpec(**fields)  # type: ignore[arg-type]


def unit_of(document: Document) -> str:
    """The provisioning unit's text, wherever the flavour keeps it."""
    data = document.data
    if document.flavour == "cloud-init":
        (f,) = [f for f in data["write_files"] if f["path"].endswith("vulcano-provisioner.service")]
        return str(f["content"])
    if document.flavour == "flatcar":
        (u,) = [u for u in data["systemd"]["units"] if u["name"] == "vulcano-provisioner.service"]
        return str(u["contents"])
    (u,) = [u for u in data["coreos"]["units"] if u["name"] == "vulcano-provisioner.service"]
    return str(u["content"])


def keys_of(document: Document) -> list[str]:
    if document.flavour == "flatcar":
        return list(document.data["passwd"]["users"][0]["sshAuthorizedKeys"])
    return list(document.data["ssh_authorized_keys"])


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_each_flavour_runs_the_container_as_a_restarting_unit_with_host_state(
    flavour: str,
) -> None:
    s = spec(flavour)
    document = render_provisioner(s)
    unit = unit_of(document)
    assert "Restart=on-failure" in unit.splitlines()
    assert "  --volume /var/lib/vulcano:/var/lib/vulcano \\" in unit.splitlines()
    assert f"Environment=VULCANO_IMAGE={IMAGE}" in unit.splitlines()
    assert "Environment=VULCANO_CLUSTER_NAME=prod" in unit.splitlines()
    assert "Environment=VULCANO_CLUSTER_SIZE=5" in unit.splitlines()
    assert "WantedBy=multi-user.target" in unit.splitlines()
    assert keys_of(document) == [k.line for k in s.ssh_keys]
    assert document.size <= cloudconfig.MAX_DOCUMENT_BYTES


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_each_flavours_unit_gives_the_state_dir_to_the_images_user(flavour: str) -> None:
    lines = unit_of(render_provisioner(spec(flavour))).splitlines()
    uid = image.USER_ID
    make = f"ExecStartPre=/usr/bin/install -d -o {uid} -g {uid} -m 0700 {image.STATE_DIR}"
    assert make in lines
    # Before the container starts, and no StateDirectory= to chown it back to root.
    assert lines.index(make) < next(i for i, x in enumerate(lines) if x.startswith("ExecStart="))
    assert not [x for x in lines if x.startswith("StateDirectory")]
    assert f"Environment=VULCANO_STATE_DIR={image.STATE_DIR}" in lines
    assert "--env VULCANO_STATE_DIR" in unit_of(render_provisioner(spec(flavour)))


@pytest.mark.parametrize("flavour", list(cloudconfig.FLAVOURS))
def test_each_flavours_unit_starts_the_image_it_has_when_the_pull_fails(flavour: str) -> None:
    lines = unit_of(render_provisioner(spec(flavour))).splitlines()
    assert "ExecStartPre=-/usr/bin/docker pull ${VULCANO_IMAGE}" in lines


def test_cloud_init_installs_docker_and_starts_the_unit() -> None:
    data = render_provisioner(spec("cloud-init")).data
    assert "docker.io" in data["packages"]
    assert ["systemctl", "enable", "--now", "vulcano-provisioner.service"] in data["runcmd"]


def test_flatcar_is_ignition_3_with_docker_enabled() -> None:
    document = render_provisioner(spec("flatcar"))
    assert document.content_type == "application/json"
    assert document.data["ignition"]["version"].startswith("3.")
    assert {"name": "docker.service", "enabled": True} in document.data["systemd"]["units"]


def test_coreos_legacy_starts_docker_and_the_unit_from_its_coreos_section() -> None:
    text = render_provisioner(spec("coreos-legacy")).text
    data = yaml.safe_load(text)
    names = [(u["name"], u["command"]) for u in data["coreos"]["units"]]
    assert names == [("docker.service", "start"), ("vulcano-provisioner.service", "start")]


@pytest.mark.parametrize("flavour", ["cloud-init", "coreos-legacy"])
def test_cloud_init_schema_accepts_the_yaml_flavours(flavour: str) -> None:
    require(shutil.which("cloud-init") is not None, "needs Debian's cloud-init")
    assert validate_with_tools(render_provisioner(spec(flavour)), required=True) is True


def test_ignition_validate_accepts_the_flatcar_flavour() -> None:
    require(shutil.which("ignition-validate") is not None, "needs Debian's ignition")
    assert validate_with_tools(render_provisioner(spec("flatcar")), required=True) is True


def test_real_validators_reject_broken_documents() -> None:
    require(shutil.which("cloud-init") is not None, "needs Debian's cloud-init")
    require(shutil.which("ignition-validate") is not None, "needs Debian's ignition")
    bad_yaml = Document("cloud-init", "#cloud-config\nruncmd: 5\n", "text/cloud-config", None)
    with pytest.raises(InvalidDocument, match="cloud-init rejected"):
        validate_with_tools(bad_yaml, required=True)
    unused_key = json.dumps({"ignition": {"version": "3.3.0"}, "passwd": {"userz": []}})
    with pytest.raises(InvalidDocument, match="ignition-validate rejected"):
        validate_with_tools(Document("flatcar", unused_key, "application/json", None), True)


def test_a_document_over_64_kib_is_refused() -> None:
    keys = "\n".join(rsa_line(16384, "k" * 200) for _ in range(24))
    with pytest.raises(DocumentTooLarge, match="over the 64 KiB"):
        render_provisioner(spec("cloud-init", keys))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cluster_name", "Prod"),
        ("cluster_name", "a\nb: c"),
        ("cluster_name", "-x"),
        ("cluster_name", "x" * 64),
        ("image", "ubuntu latest"),
        ("image", "x\nExecStart=/bin/sh"),
        ("image", "a" * 256),
        ("size", 0),
        ("size", 101),
        ("size", True),
        ("flavour", "windows"),
    ],
)
def test_values_a_document_cannot_hold_are_refused_by_field(field: str, value: object) -> None:
    with pytest.raises(InputError) as caught:
        render_provisioner(spec(**{"flavour": "cloud-init", field: value}))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_templates_cannot_output_an_unquoted_value(tmp_path: Path) -> None:
    (tmp_path / "bad.j2").write_text("name: {{ name }}\n")
    (tmp_path / "good.j2").write_text("name: {{ name | yaml_str }}\n")
    env = cloudconfig.environment(tmp_path)
    with pytest.raises(InvalidDocument, match="unquoted"):
        env.get_template("bad.j2").render(name="x\nevil: 1")
    assert yaml.safe_load(env.get_template("good.j2").render(name="x\nevil: 1")) == {
        "name": "x\nevil: 1"
    }
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("good.j2").render()


def test_unit_words_refuse_anything_that_could_add_a_line(tmp_path: Path) -> None:
    (tmp_path / "u.j2").write_text("ExecStart=/bin/run {{ image | unit_word }}\n")
    env = cloudconfig.environment(tmp_path)
    for evil in ["a\nExecStartPre=/bin/sh", "a b", "%h", "$HOME", "a;b", ""]:
        with pytest.raises(InvalidDocument):
            env.get_template("u.j2").render(image=evil)


def test_shape_tells_an_added_key_or_unit_line_apart() -> None:
    base = {"a": ["x", "y"], "u": "[Unit]\nA=1\n"}
    assert cloudconfig.shape(base) == cloudconfig.shape({"a": ["p", "q"], "u": "[Unit]\nA=2\n"})
    assert cloudconfig.shape(base) != cloudconfig.shape({**base, "b": 1})
    assert cloudconfig.shape(base) != cloudconfig.shape({**base, "a": ["x", "y", "z"]})
    assert cloudconfig.shape(base) != cloudconfig.shape({**base, "u": "[Unit]\nA=1\nB=2\n"})
    assert cloudconfig.shape(base) != cloudconfig.shape({**base, "a": ["x", True]})


@given(st.text())
def test_yaml_str_round_trips_any_text(text: str) -> None:
    quoted = cloudconfig._yaml_str(text)
    assert quoted.isascii()
    assert yaml.safe_load(f"key: {quoted}\n") == {"key": text}
