"""The project's sessions: tests, lint, typecheck, bench, demo.

Sessions install what they need: Python packages into their virtualenv, and the Debian
packages the real-system tests talk to (etcd, sshd, nftables, nginx, HAProxy, Chromium, the
cloud-init and Ignition validators) when they are missing and we may install them.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

# What building the Vulcano image and booting test machines needs (vulcano/lab/).
IMAGE_DEBIAN_PACKAGES = ["podman", "runc", "mmdebstrap"]

DEBIAN_PACKAGES = [
    "etcd-server",
    "etcd-client",
    "openssh-server",
    "nftables",
    "nginx",
    "haproxy",
    "chromium",
    "cloud-init",
    "ignition",
    "iperf3",
    "iproute2",
    "default-jre-headless",  # the Cloud Datastore emulator is a Java program
    *IMAGE_DEBIAN_PACKAGES,
]


def _missing_debian_packages(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
        )
        if "install ok installed" not in probe.stdout:
            missing.append(name)
    return missing


def ensure_debian_packages(session: nox.Session, names: list[str] = DEBIAN_PACKAGES) -> None:
    """Install the Debian packages that are missing, without starting their services."""
    if shutil.which("dpkg-query") is None:
        session.warn("not a Debian system: install " + " ".join(names) + " yourself")
        return
    missing = _missing_debian_packages(names)
    if not missing:
        return
    if os.geteuid() != 0:
        session.warn("not root: cannot install " + " ".join(missing))
        return
    # policy-rc.d keeps apt from starting nginx/sshd/etcd as system services: tests start
    # their own copies on loopback ports and stop them.
    policy = "/usr/sbin/policy-rc.d"
    had_policy = os.path.exists(policy)
    if not had_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)  # noqa: S103 - an executable policy script
    try:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *missing,
            external=True,
            env=env,
        )
    finally:
        if not had_policy:
            os.unlink(policy)


# The Cloud Datastore emulator is not in Debian: it comes from the Google Cloud CLI's own
# package repository (https://cloud.google.com/sdk/docs/install#deb), added when missing.
EMULATOR_PACKAGE = "google-cloud-cli-datastore-emulator"
GOOGLE_CLOUD_KEY_URL = "https://packages.cloud.google.com/apt/doc/apt-key.gpg"
GOOGLE_CLOUD_KEYRING = "/usr/share/keyrings/cloud.google.asc"
GOOGLE_CLOUD_SOURCES = "/etc/apt/sources.list.d/vulcano-google-cloud-cli.list"
GOOGLE_CLOUD_SOURCE_LINE = (
    f"deb [signed-by={GOOGLE_CLOUD_KEYRING}] https://packages.cloud.google.com/apt cloud-sdk main\n"
)


def ensure_datastore_emulator(session: nox.Session) -> None:
    """Install the Datastore emulator from Google's repository when it is missing."""
    if shutil.which("dpkg-query") is None or not _missing_debian_packages([EMULATOR_PACKAGE]):
        return
    if os.geteuid() != 0:
        session.warn(f"not root: cannot install {EMULATOR_PACKAGE}")
        return
    if not os.path.exists(GOOGLE_CLOUD_SOURCES):
        import urllib.request

        session.log(f"adding the Google Cloud CLI's apt repository for {EMULATOR_PACKAGE}")
        with urllib.request.urlopen(GOOGLE_CLOUD_KEY_URL, timeout=60) as answer:
            key = answer.read()
        with open(GOOGLE_CLOUD_KEYRING, "wb") as f:
            f.write(key)
        with open(GOOGLE_CLOUD_SOURCES, "w") as f:
            f.write(GOOGLE_CLOUD_SOURCE_LINE)
    ensure_debian_packages(session, [EMULATOR_PACKAGE])


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite against real etcd, Datastore emulator, sshd and netns."""
    ensure_debian_packages(session)
    ensure_datastore_emulator(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: style and common bugs."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every deployable."""
    session.install("-e", ".[typecheck,test]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ (or the ones named after --) and print their tables."""
    ensure_debian_packages(session)
    ensure_datastore_emulator(session)
    session.install("-e", ".[test]")
    names = session.posargs or sorted(
        f[:-3] for f in os.listdir("bench") if f.endswith(".py") and not f.startswith("_")
    )
    for name in names:
        session.run("python", "-m", f"bench.{name}")


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """Build the Vulcano image with podman (cached by its inputs); print its references.

    Runs on the host's Python (vulcano.lab.images needs only the standard library), so a
    second run with nothing changed is a digest and one `podman image exists`.
    """
    ensure_debian_packages(session, IMAGE_DEBIAN_PACKAGES)
    session.run("python3", "-m", "vulcano.lab.images", *session.posargs, external=True)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: the whole system on this machine (`nox -s demo -- --help`)."""
    ensure_debian_packages(session)
    ensure_datastore_emulator(session)
    session.install("-e", ".[test]")
    session.run("python", "-m", "vulcano.lab.demo", *session.posargs)
