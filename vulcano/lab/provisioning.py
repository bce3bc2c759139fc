"""The provisioning machine: booted from the installer's own user-data, Docker inside.

    image = build_provisioning_machine_image(podman).reference
    archive = image_archive(podman, vulcano_image)          # podman save, cached
    document = create_install(installer, cluster_name="prod", size=3)
    m = start_machine(podman, image, document.text, name=..., netns=host.netns,
                      read_only=[(archive, IMAGE_ARCHIVE_DIR)], cgroupns="private")

What a Debian 12 cloud instance is to the provisioning user-data (cloud-init flavour):
the lab's machine image (vulcano/lab/machines.py's recipe, reused as it is) plus what
that user-data installs, Docker (`docker.io`), so its `packages:` finds it installed.
Docker runs in the machine as Debian ships it; the one setting it needs is the
machine's own cgroup namespace (``cgroupns="private"``): with the host's, dockerd's
container cgroups (/docker/<id>) lie outside the machine's cgroup mounts and runc fails
mounting them ("stat /sys/fs/docker/<id>"), as a real VM never would.

No registry is reachable, so the Vulcano image reaches the machine the way a
`docker pull` would leave it: the lab saves the image it built (`podman save`) to an
archive, mounts the archive's directory read-only at IMAGE_ARCHIVE_DIR, and a unit
baked into this machine image (`vulcano-lab-images.service`) `docker load`s it before
cloud-init's final stage runs the user-data's commands. The installer's unit then finds
the image local; its `docker pull` fails (the machine has no way out) and is allowed to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from vulcano import image as public_image
from vulcano.lab import cache, machines, policy, rootfs
from vulcano.lab.errors import LabError
from vulcano.lab.images import ImageBuild
from vulcano.lab.podman import Podman
from vulcano.lab.sshkeys import ed25519_line

if TYPE_CHECKING:
    from vulcano.lab.installer import InstallerServer

# What the provisioning user-data installs (templates/cloud-config/provisioner.cloud-init.yaml.j2).
PROVISIONING_USER_DATA_PACKAGES = ("docker.io",)
# Where a machine finds the image archives the lab mounts into it.
IMAGE_ARCHIVE_DIR = "/var/lib/vulcano-lab/images"
ARCHIVE_NAME = "vulcano.tar"
# The unit of the installer's user-data, and the container it runs.
PROVISIONER_UNIT = "vulcano-provisioner.service"
PROVISIONER_CONTAINER = "vulcano-provisioner"
UNIT_PATH = f"/etc/systemd/system/{PROVISIONER_UNIT}"
# Archives of earlier image builds kept beside the newest (other worktrees may use them).
ARCHIVES_KEPT = 3

LOAD_IMAGES_UNIT = f"""\
[Unit]
Description=Load the container images the lab put beside this machine, as a pull would
ConditionDirectoryNotEmpty={IMAGE_ARCHIVE_DIR}
Requires=docker.service
After=docker.service
Before=cloud-final.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for a in {IMAGE_ARCHIVE_DIR}/*.tar; do /usr/bin/docker load -i "$a"; done'

[Install]
WantedBy=multi-user.target
"""

PROVISIONING_MACHINE_IMAGE = dataclasses.replace(
    machines.MACHINE_IMAGE,
    name="vulcano-provisioning-machine",
    packages=(*machines.MACHINE_IMAGE.packages, *PROVISIONING_USER_DATA_PACKAGES),
    hooks=(
        *machines.MACHINE_IMAGE.hooks,
        rootfs.write_file_hook("/etc/systemd/system/vulcano-lab-images.service", LOAD_IMAGES_UNIT),
        'chroot "$1" systemctl enable vulcano-lab-images.service',
    ),
)


def build_provisioning_machine_image(podman: Podman, *, force: bool = False) -> rootfs.Built:
    """The provisioning machine's image, built once per recipe (its digest is the tag)."""
    return rootfs.build(PROVISIONING_MACHINE_IMAGE, podman, force=force)


def image_archive(podman: Podman, built: ImageBuild) -> Path:
    """A directory holding ARCHIVE_NAME: ``built`` saved under its public name, cached.

    `docker load` of it gives the machine the image the installer's unit names
    (vulcano/image.py's REFERENCE) with the id the lab built. The public tag is shared
    with every other build on this machine, so the archive is checked to hold ``built``.
    """
    root = cache.cache_dir() / "image-archives"
    directory = root / built.key
    archive = directory / ARCHIVE_NAME
    wanted = podman.image_id(built.reference)
    if archive.is_file() and archive_image_id(archive) == wanted:
        return directory
    with cache.locked("image-archive"):
        if archive.is_file() and archive_image_id(archive) == wanted:
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{ARCHIVE_NAME}.partial"
        partial.unlink(missing_ok=True)
        podman.run("tag", built.reference, built.public)
        podman.run(
            "save",
            "--format",
            "docker-archive",
            "--output",
            str(partial),
            built.public,
            timeout=policy.IMPORT_TIMEOUT,
        )
        saved = archive_image_id(partial)
        if saved != wanted:
            partial.unlink(missing_ok=True)
            raise LabError(
                f"{built.public} was retagged while it was saved ({saved[:12]}, not "
                f"{wanted[:12]}): another build ran; try again"
            )
        os.replace(partial, archive)
        _drop_old_archives(root, keep=directory)
    return directory


def archive_image_id(archive: Path) -> str:
    """The image id a docker-archive holds (its config's digest), "" when unreadable."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else []
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return ""
    if len(manifest) != 1:
        return ""
    return str(manifest[0].get("Config", "")).removesuffix(".json")


def _drop_old_archives(root: Path, keep: Path) -> None:
    older = sorted(
        (d for d in root.iterdir() if d.is_dir() and d != keep),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for directory in older[ARCHIVES_KEPT - 1 :]:
        shutil.rmtree(directory, ignore_errors=True)


# --- the installer's own document ----------------------------------------------------


@dataclass(frozen=True)
class InstallDocument:
    """An install made through the installer's form, and its permalink's document."""

    token: str
    text: str
    content_type: str


_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_INSTALL_PATH_RE = re.compile(r"/installs/([^/?#]+)$")
_PERMALINK_RE = re.compile(r'id="permalink" href="(/cloud-config/[^"?#]+)"')


def create_install(
    installer: InstallerServer,
    *,
    cluster_name: str,
    size: int,
    flavour: str = "cloud-init",
    image: str = public_image.REFERENCE,
    ssh_keys: str | None = None,
) -> InstallDocument:
    """Fill in the installer's form as a user would, then fetch the install's permalink.

    The document is what the installer stored and serves a machine (rendered and
    checked by the installer itself, validators included), not a rendering of our own.
    """
    answers = {
        "cluster_name": cluster_name,
        "ssh_keys": ssh_keys or ed25519_line("operator@vulcano-lab"),
        "flavour": flavour,
        "image": image,
        "size": str(size),
    }
    with requests.Session() as session:
        if installer.underlay_url:
            # Asked as a user on the underlay asks it: the document then names the
            # installer's underlay URL, which the provisioning machine can call back.
            session.headers["Host"] = urlsplit(installer.underlay_url).netloc
        form = session.get(f"{installer.url}/", timeout=policy.INSTALLER_REQUEST_TIMEOUT)
        form.raise_for_status()
        match = _CSRF_RE.search(form.text)
        if match is None:
            raise LabError("the installer's form has no csrf_token")
        created = session.post(
            f"{installer.url}/installs",
            data={**answers, "csrf_token": match.group(1)},
            allow_redirects=False,
            timeout=policy.INSTALLER_REQUEST_TIMEOUT,
        )
        location = created.headers.get("Location", "")
        found = _INSTALL_PATH_RE.search(location)
        if created.status_code != 303 or found is None:
            raise LabError(
                f"the installer refused the install ({created.status_code}):\n{created.text[:2000]}"
            )
        token = found.group(1)  # the manage token; the page names the permalink's own
        page = session.get(
            f"{installer.url}/installs/{token}", timeout=policy.INSTALLER_REQUEST_TIMEOUT
        )
        page.raise_for_status()
        link = _PERMALINK_RE.search(page.text)
        if link is None:
            raise LabError("the install page shows no permalink")
        permalink = session.get(
            f"{installer.url}{link.group(1)}", timeout=policy.INSTALLER_REQUEST_TIMEOUT
        )
        permalink.raise_for_status()
    return InstallDocument(token, permalink.text, permalink.headers.get("Content-Type", ""))


# --- the unit's own command line --------------------------------------------------------

_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def unit_command(unit_text: str, key: str = "ExecStart") -> list[str]:
    """The argv systemd runs for ``key`` of a unit: continuation lines joined, the
    prefixes (``-@:+!``) dropped, words split, ``${NAME}``/``$NAME`` from Environment=.

    Enough of systemd's rules for the installer's unit (one command per key, values
    without spaces or quotes, which the unit's renderer guarantees).
    """
    joined = re.sub(r"\\\n[ \t]*", " ", unit_text)
    environment: dict[str, str] = {}
    command = None
    for line in joined.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        if name == "Environment":
            variable, _, setting = value.partition("=")
            environment[variable] = setting
        elif name == key and command is None:
            command = value.lstrip("-@:+!")
    if command is None:
        raise LabError(f"the unit has no {key}=")
    return [
        _VARIABLE_RE.sub(lambda m: environment.get(m.group(1) or m.group(2), ""), word)
        for word in shlex.split(command)
    ]


def main_process_argv(machine: machines.Machine, unit: str = PROVISIONER_UNIT) -> list[str]:
    """The command line of the unit's main process, as the machine's kernel has it."""
    pid = machine.systemctl("show", "--property", "MainPID", "--value", unit).stdout.strip()
    if pid in ("", "0"):
        return []
    raw = machine.exec(["cat", f"/proc/{pid}/cmdline"], check=False).stdout
    return [word for word in raw.split("\0") if word]


# --- inside the machine ---------------------------------------------------------------


def container_state(machine: machines.Machine) -> dict[str, str]:
    """The provisioning container as the machine's Docker sees it ({} when there is none).

    Keys: ``status`` (running, exited...), ``image`` (its image id), ``user``, ``network``.
    """
    template = "{{.State.Status}} {{.Image}} {{.Config.User}} {{.HostConfig.NetworkMode}}"
    done = machine.exec(
        ["docker", "inspect", "--format", template, PROVISIONER_CONTAINER], check=False
    )
    if done.returncode != 0:
        return {}
    status, image_id, user, network = done.stdout.split()
    return {"status": status, "image": image_id, "user": user, "network": network}


def docker_logs(machine: machines.Machine) -> str:
    """The provisioning container's output, as `docker logs` keeps it (for failures)."""
    done = machine.exec(["docker", "logs", "--tail", "100", PROVISIONER_CONTAINER], check=False)
    return done.stdout + done.stderr


def diagnostics(machine: machines.Machine) -> str:
    """What to show when the provisioning container did not come up."""
    parts = [
        machine.systemctl("status", PROVISIONER_UNIT).stdout,
        machine.journal(PROVISIONER_UNIT, lines=80),
        machine.journal("vulcano-lab-images.service", lines=20),
        machine.journal("docker.service", lines=40),
        docker_logs(machine),
    ]
    return "\n---\n".join(p for p in parts if p.strip())
