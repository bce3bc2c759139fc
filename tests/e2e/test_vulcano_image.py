"""The Vulcano image builds from this tree, runs both CLIs, and runs as a non-root user."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from appengine.images import DEFAULT_IMAGE
from vulcano import image
from vulcano.lab import machines
from vulcano.lab.images import VENV, ImageBuild, build_image, export_venv
from vulcano.lab.podman import Podman, ulimit_flags

ROOT = Path(__file__).resolve().parents[2]


def run_image(podman: Podman, reference: str, *command: str, entrypoint: str = "") -> str:
    """`podman run --rm IMAGE COMMAND...`; its standard output."""
    flags = ["--entrypoint", entrypoint] if entrypoint else []
    done = podman.run("run", "--rm", "--pull=never", *ulimit_flags(), *flags, reference, *command)
    return done.stdout


def test_the_installer_defaults_to_the_image_this_build_publishes() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == image.VERSION
    assert DEFAULT_IMAGE == image.REFERENCE == f"{image.REPOSITORY}:{version}"


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(1200)
class TestTheImage:
    def test_it_is_tagged_with_its_inputs_and_its_public_name(
        self, podman: Podman, vulcano_image: ImageBuild
    ) -> None:
        assert vulcano_image.reference == f"localhost/vulcano:{vulcano_image.key}"
        ids = {
            podman.image_inspect(ref)["Id"]
            for ref in (vulcano_image.reference, vulcano_image.public)
        }
        assert len(ids) == 1
        assert vulcano_image.public == image.REFERENCE

    def test_a_second_build_with_the_same_inputs_is_a_lookup(
        self, podman: Podman, vulcano_image: ImageBuild
    ) -> None:
        again = build_image(podman=podman)
        assert again.cached
        assert again.reference == vulcano_image.reference

    def test_it_runs_the_vulcano_cli(self, podman: Podman, vulcano_image: ImageBuild) -> None:
        out = run_image(podman, vulcano_image.reference, "vulcano", "--help")
        assert "Usage: vulcano" in out
        assert "list-units" in out

    def test_its_agent_entrypoint_runs_the_node_agent(
        self, podman: Podman, vulcano_image: ImageBuild
    ) -> None:
        out = run_image(podman, vulcano_image.reference, "--help", entrypoint="vulcano-agent")
        assert "Usage: vulcano-agent" in out
        assert "node agent" in out

    def test_its_user_is_not_root_and_owns_the_state_volume(
        self, podman: Podman, vulcano_image: ImageBuild
    ) -> None:
        config = podman.image_inspect(vulcano_image.reference)["Config"]
        assert isinstance(config, dict)
        assert config["User"] == f"{image.USER_ID}:{image.USER_ID}"
        assert image.STATE_DIR in config["Volumes"]
        ids = run_image(podman, vulcano_image.reference, "id", "-u")
        assert ids.strip() == str(image.USER_ID)
        owner = run_image(
            podman,
            vulcano_image.reference,
            "stat",
            "-c",
            "%u %a",
            image.STATE_DIR,
        )
        assert owner.split() == [str(image.USER_ID), "700"]

    def test_it_renders_node_user_data_from_its_own_templates(
        self, podman: Podman, vulcano_image: ImageBuild
    ) -> None:
        script = (
            "from vulcano.nodeconfig import NodeSpec, render_node; "
            "print(render_node(NodeSpec('node-1', '10.0.0.2', 'http://d.example/x')).text)"
        )
        out = run_image(podman, vulcano_image.reference, "python3", "-c", script)
        assert out.startswith("#cloud-config\n")
        assert "etcd-server" in out

    def test_its_venv_runs_on_a_debian_machine_as_a_bundle(
        self, podman: Podman, vulcano_image: ImageBuild, machine_image: str, tmp_path: Path
    ) -> None:
        bundle = export_venv(podman, vulcano_image.reference, tmp_path / "bundle")
        user_data = "#cloud-config\nhostname: bundle\n"
        with machines.machine(
            podman, machine_image, user_data, name="bundle", read_only=[(bundle, VENV)]
        ) as machine:
            machine.wait_cloud_init()
            out = machine.exec([f"{VENV}/bin/vulcano-agent", "--help"]).stdout
            assert "Usage: vulcano-agent" in out
            version = machine.exec([f"{VENV}/bin/python3", "--version"]).stdout
            assert version.startswith("Python 3.11")
