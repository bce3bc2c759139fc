"""Test machines: privileged podman containers booting systemd and cloud-init.

    image = build_machine_image(podman).reference
    with start_machine(image, user_data, name="node-0", netns="vh1a2b0") as m:
        m.wait_cloud_init()                      # CloudInitFailed, with its log, on error
        m.systemctl("is-active", "etcd")
        m.journal("etcd.service")

A machine is what a Debian 12 cloud instance is to its user-data: the machine image holds
what a Debian cloud image holds (systemd, cloud-init, sshd, sudo, locales) plus every
package Vulcano's user-data installs (etcd-server), so nothing is fetched while a test
runs. It boots with a NoCloud seed (/var/lib/cloud/seed/nocloud) whose user-data is
exactly the document given, inside a network namespace the test made.

Three settings make it a cloud instance *offline* (all in the image, none in user-data):
  * NoCloud is the only datasource, so cloud-init never probes a metadata service;
  * cloud-init leaves the network alone: the test gave the namespace its addresses, as a
    cloud's hypervisor would;
  * apt's only source is an empty local repository, so the user-data's
    `package_update: true` runs a real `apt-get update` that succeeds without a network,
    and `packages: [etcd-server]` finds it installed and does nothing. cloud-init keeps
    that sources list (`apt: preserve_sources_list`), as Debian's own images configure.

The agent is baked in as the node user-data's install-agent would leave it: the image
is the Debian rootfs (mmdebstrap, cached by its recipe) plus one layer in which that very
script installs /opt/vulcano from the agent bundle (agentbundle.py) through a file: URL.
The layer's tag is a digest of the rootfs, the bundle and the script, so the image is
made again when the product's source changes (a new bundle), and only then; the slow
rootfs stays cached. A node's unit then finds the agent installed and fetches nothing.

Baked in, etcd-server is enabled as its package leaves it, so it starts once at boot with
Debian's default configuration (loopback only, /var/lib/etcd/default), where on a real
image apt's postinst would start it the same way during `packages:`. Either way it runs
before cloud-final (which is After=multi-user.target) writes the deferred files, and the
user-data's `systemctl restart` then starts the configured member: no race between them.

Every container's name carries this process's RUN_TOKEN and a label with it, so
`remove_run_machines()` removes only what this run started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from vulcano import nodeconfig
from vulcano.lab import cache, policy, rootfs
from vulcano.lab.agentbundle import build_agent_bundle
from vulcano.lab.errors import CloudInitFailed, MachineError, PodmanError
from vulcano.lab.podman import Podman, ulimit_flags

log = logging.getLogger(__name__)

RUN_TOKEN = secrets.token_hex(3)
RUN_LABEL = "io.vulcano.lab.run"
SEED_DIR = "/var/lib/cloud/seed/nocloud"
LOCAL_APT_REPO = "/var/lib/vulcano-lab/apt"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")

CLOUD_CFG = """\
# Vulcano lab machine: a cloud instance without a cloud (vulcano/lab/machines.py).
datasource_list: [NoCloud, None]
network:
  config: disabled
apt:
  preserve_sources_list: true
"""

# What a Debian 12 cloud image holds, plus what Vulcano's user-data installs.
CLOUD_IMAGE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",  # hostnamectl (cloud-init's set_hostname) talks to hostnamed over D-Bus
    "cloud-init",
    "locales",
    "openssh-server",
    "sudo",
    "iproute2",
    "nftables",
    "python3",
    "curl",
    "ca-certificates",
    "procps",
)
# templates/cloud-config/node-cloud-init.yaml.j2's packages (the others are above).
USER_DATA_PACKAGES = ("etcd-server", "python3-venv", "openssl", "nginx", "haproxy")

MACHINE_IMAGE = rootfs.Rootfs(
    name="vulcano-machine",
    packages=(*CLOUD_IMAGE_PACKAGES, *USER_DATA_PACKAGES),
    hooks=(
        rootfs.write_file_hook("/etc/cloud/cloud.cfg.d/90-vulcano-lab.cfg", CLOUD_CFG),
        'rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*',
        rootfs.write_file_hook(
            "/etc/apt/sources.list.d/vulcano-lab.list",
            f"deb [trusted=yes] file:{LOCAL_APT_REPO} ./\n",
        ),
        rootfs.write_file_hook(f"{LOCAL_APT_REPO}/Packages", ""),
        # cloud-init's locale module sets en_US.UTF-8 (Debian's default); generated
        # here, it finds it set instead of failing on a locale that was never built.
        rootfs.write_file_hook("/etc/locale.gen", "en_US.UTF-8 UTF-8\n"),
        'chroot "$1" locale-gen',
        rootfs.write_file_hook("/etc/default/locale", "LANG=en_US.UTF-8\n"),
        # Every machine gets its own id at boot, as a fresh cloud instance does.
        ': > "$1/etc/machine-id"',
    ),
    changes=('CMD ["/lib/systemd/systemd"]',),
)


NODE_REPOSITORY = "localhost/vulcano-node"
BUNDLE_DIR = "/var/lib/vulcano-lab/agent-bundle"
# Bumped when the agent layer's recipe changes meaning.
AGENT_LAYER_FORMAT = "1"
_AGENT_LAYER = """\
FROM {base}
COPY {bundle} {bundle_dir}/{bundle}
COPY install-agent {install_agent}
RUN mkdir -p /etc/vulcano \\
 && echo file://{bundle_dir} > {url_file} \\
 && {install_agent} \\
 && {venv}/bin/vulcano-agent --help >/dev/null \\
 && rm -rf /etc/vulcano {bundle_dir} $(dirname {install_agent})
CMD ["/lib/systemd/systemd"]
"""


def build_machine_image(podman: Podman, *, force: bool = False) -> rootfs.Built:
    """The machine image: the rootfs (once per recipe) plus the agent layer (once per
    bundle); ``force`` rebuilds both."""
    started = time.monotonic()
    base = rootfs.build(MACHINE_IMAGE, podman, force=force)
    bundle = build_agent_bundle(podman)
    script = nodeconfig.install_agent_script()
    recipe = _AGENT_LAYER.format(
        base=base.reference,
        bundle=bundle.path.name,
        bundle_dir=BUNDLE_DIR,
        install_agent=nodeconfig.INSTALL_AGENT_PATH,
        url_file=nodeconfig.AGENT_BUNDLE_URL_PATH,
        venv=nodeconfig.AGENT_VENV,
    )
    key = cache.digest([AGENT_LAYER_FORMAT, base.reference, bundle.key, script, recipe])
    reference = f"{NODE_REPOSITORY}:{key}"

    def built(cached: bool) -> rootfs.Built:
        return rootfs.Built(reference, cached, time.monotonic() - started)

    if not force and podman.image_exists(reference):
        return built(cached=True)
    with cache.locked("node-image"):
        if not force and podman.image_exists(reference):
            return built(cached=True)
        previous = podman.image_id(reference)
        with tempfile.TemporaryDirectory(prefix="node-image-", dir=cache.cache_dir()) as tmp:
            context = Path(tmp)
            shutil.copyfile(bundle.path, context / bundle.path.name)
            (context / "install-agent").write_text(script)
            (context / "install-agent").chmod(0o755)
            (context / "Containerfile").write_text(recipe)
            log.info("building %s (the agent layer)", reference)
            podman.run(
                "build",
                "--file",
                str(context / "Containerfile"),
                "--tag",
                reference,
                "--label",
                f"{rootfs.INPUTS_LABEL}={key}",
                "--pull=never",
                "--network=none",
                "--layers=false",
                *ulimit_flags(),
                str(context),
                timeout=policy.IMAGE_BUILD_TIMEOUT,
            )
        if previous and previous != podman.image_id(reference):
            podman.run("image", "rm", previous, check=False)
    return built(cached=False)


class Machine:
    """One running machine: a container with systemd as PID 1 and a NoCloud seed."""

    def __init__(self, podman: Podman, container: str, hostname: str, seed: Path) -> None:
        self.podman = podman
        self.container = container
        self.hostname = hostname
        self._seed = seed
        self.started = time.monotonic()

    def __repr__(self) -> str:
        return f"Machine({self.container!r})"

    def __enter__(self) -> Machine:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_and_remove()

    # -- inside the machine ----------------------------------------------------------------
    def exec(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = policy.EXEC_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the machine as root; PodmanError on a non-zero exit if check."""
        flags = ["--interactive"] if input is not None else []
        return self.podman.run(
            "exec", *flags, self.container, *argv, timeout=timeout, check=check, input=input
        )

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.exec(["systemctl", "--no-pager", *args], check=check)

    def journal(self, unit: str, lines: int = 200) -> str:
        """The unit's journal lines, as `journalctl --unit` prints them."""
        done = self.exec(
            ["journalctl", "--unit", unit, "--no-pager", "--output", "short", "-n", str(lines)],
            check=False,
        )
        return done.stdout + done.stderr

    def read_file(self, path: str) -> str:
        return self.exec(["cat", path], check=False).stdout

    def running(self) -> bool:
        done = self.podman.run(
            "container", "inspect", "--format", "{{.State.Running}}", self.container, check=False
        )
        return done.stdout.strip() == "true"

    def cloud_init_status(self) -> str:
        """`cloud-init status`'s word: "not run", "running", "done", "error" (or "")."""
        done = self.exec(["cloud-init", "status"], check=False)
        match = re.search(r"status:\s*(.+)", done.stdout)
        return match.group(1).strip() if match else ""

    def cloud_init_log(self) -> str:
        """What to show when cloud-init failed: its status, output log and warnings."""
        parts = [self.exec(["cloud-init", "status", "--long"], check=False).stdout]
        parts.append(self.read_file("/var/log/cloud-init-output.log")[-6000:])
        warnings = self.exec(
            ["grep", "-E", "WARNING|Traceback|Error", "/var/log/cloud-init.log"], check=False
        ).stdout
        parts.append(warnings[-4000:])
        return "\n".join(p for p in parts if p)

    def wait_cloud_init(self, timeout: float = policy.CLOUD_INIT_TIMEOUT) -> float:
        """Wait until cloud-init finished; seconds since start. CloudInitFailed otherwise."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            if not self.running():
                logs = self.podman.run("logs", self.container, check=False)
                raise MachineError(
                    f"{self.container} stopped while booting:\n{logs.stdout}{logs.stderr}"
                )
            status = self.cloud_init_status()
            if status == "done":
                return time.monotonic() - self.started
            if status == "error":
                raise CloudInitFailed(self.container, status, self.cloud_init_log())
            time.sleep(policy.POLL_INTERVAL)
        raise CloudInitFailed(
            self.container, f"not finished after {timeout:.0f}s ({status!r})", self.cloud_init_log()
        )

    # -- from outside ------------------------------------------------------------------------
    def kill(self) -> None:
        """`podman kill`: the machine's power is cut, systemd gets no say; waits for it."""
        self.podman.run("kill", self.container, check=False)
        self.podman.run("wait", self.container, check=False)

    def stop_and_remove(self) -> None:
        """Stop the machine (systemd shuts down, then it is killed) and remove it."""
        try:
            self.podman.run(
                "rm",
                "--force",
                "--time",
                str(policy.STOP_GRACE_SECONDS),
                self.container,
                check=False,
                timeout=policy.PODMAN_TIMEOUT + policy.STOP_GRACE_SECONDS,
            )
        finally:
            shutil.rmtree(self._seed, ignore_errors=True)


def container_name(name: str) -> str:
    return f"vulcano-m-{RUN_TOKEN}-{name}"


def _write_seed(seed: Path, user_data: str, instance_id: str, hostname: str) -> None:
    seed.chmod(0o755)
    (seed / "user-data").write_text(user_data)
    # JSON is YAML: the meta-data file cannot be broken by an odd hostname.
    meta = {"instance-id": instance_id, "local-hostname": hostname}
    (seed / "meta-data").write_text(json.dumps(meta) + "\n")


def start_machine(
    podman: Podman,
    image: str,
    user_data: str,
    *,
    name: str,
    netns: str | None = None,
    hostname: str | None = None,
    read_only: Sequence[tuple[Path, str]] = (),
    cgroupns: str | None = None,
) -> Machine:
    """Start a machine booting ``user_data``; returns as soon as its container runs.

    ``netns`` is a name under /run/netns (the machine gets exactly its interfaces);
    None gives the machine a loopback interface only. ``read_only`` mounts host
    directories into the machine: (host path, path inside). ``cgroupns="private"``
    gives the machine a cgroup namespace of its own, as a VM's cgroup root is its own
    (podman's default on this cgroup v1 host is the host's): a container engine inside
    needs it (vulcano/lab/provisioning.py).
    """
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"machine name {name!r}: use lowercase letters, digits and '-'")
    hostname = hostname or name
    container = container_name(name)
    seed = Path(tempfile.mkdtemp(prefix=f"vulcano-seed-{name}-"))
    _write_seed(seed, user_data, f"{container}-{secrets.token_hex(4)}", hostname)
    network = f"ns:/run/netns/{netns}" if netns else "none"
    try:
        podman.run(
            "run",
            "--detach",
            "--pull=never",
            "--name",
            container,
            "--label",
            f"{RUN_LABEL}={RUN_TOKEN}",
            "--privileged",
            "--systemd=always",
            "--network",
            network,
            *(["--cgroupns", cgroupns] if cgroupns else []),
            "--volume",
            f"{seed}:{SEED_DIR}:ro",
            *(flag for src, dst in read_only for flag in ("--volume", f"{src}:{dst}:ro")),
            *ulimit_flags(),
            image,
            "/lib/systemd/systemd",
            timeout=policy.MACHINE_START_TIMEOUT,
        )
    except PodmanError:
        podman.run("rm", "--force", container, check=False)
        shutil.rmtree(seed, ignore_errors=True)
        raise
    return Machine(podman, container, hostname, seed)


@contextlib.contextmanager
def machine(
    podman: Podman,
    image: str,
    user_data: str,
    *,
    name: str,
    netns: str | None = None,
    read_only: Sequence[tuple[Path, str]] = (),
) -> Iterator[Machine]:
    """A started machine, stopped and removed on exit, also after a failure."""
    m = start_machine(podman, image, user_data, name=name, netns=netns, read_only=read_only)
    try:
        yield m
    finally:
        m.stop_and_remove()


def remove_run_machines(podman: Podman, token: str = RUN_TOKEN) -> list[str]:
    """Remove every machine this run (``token``) started and that is still there."""
    done = podman.run(
        "ps", "--all", "--filter", f"label={RUN_LABEL}={token}", "--format", "{{.Names}}"
    )
    names = done.stdout.split()
    for container in names:
        podman.run("rm", "--force", "--time", "0", container, check=False)
    return names
