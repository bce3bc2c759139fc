"""The agent bundle: Vulcano's wheel and every dependency's, for one node Python, as
the tar.gz that a node's install-agent fetches (templates/cloud-config/node-install-agent.sh).

    bundle = build_agent_bundle(podman)   # AgentBundle(path=.../vulcano-agent-cp311.tar.gz)

The dependencies come from the wheelhouse the Vulcano image is built from (the local
base's Python is Debian bookworm's 3.11, a Debian 12 node's); Vulcano's own wheel is
built on the host from the same source files as the image, offline, with setuptools
from that wheelhouse. Cached by a digest of the source files and the wheels, so it is
made again when the product's source changes, and only then.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vulcano.lab import cache, images, policy, rootfs
from vulcano.lab.podman import Podman, run_tool
from vulcano.lab.wheelhouse import Wheelhouse, build_wheelhouse, requirements

# Bumped when what the digest covers changes meaning.
BUNDLE_FORMAT = "1"


@dataclass(frozen=True)
class AgentBundle:
    """A bundle on disk: ``path`` is vulcano-agent-<tag>.tar.gz; ``key`` its inputs' digest."""

    path: Path
    key: str
    python_tag: str
    cached: bool


def bundle_name(python_tag: str) -> str:
    """The file install-agent asks for: vulcano-agent-cp311.tar.gz for CPython 3.11."""
    return f"vulcano-agent-{python_tag}.tar.gz"


def _python_tag(version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"cp{major}{minor}"


def _inputs_key(repo: Path, files: list[Path], wheels: list[Path], tag: str) -> str:
    parts: list[str | bytes] = [BUNDLE_FORMAT, tag]
    for rel in files:
        parts += ["file:" + rel.as_posix(), (repo / rel).read_bytes()]
    for wheel in wheels:
        parts += ["wheel:" + wheel.name, wheel.read_bytes()]
    return cache.digest(parts)


def build_agent_bundle(podman: Podman, repo: Path = images.REPO) -> AgentBundle:
    """The bundle for the local base's Python, built unless one with its inputs exists."""
    rootfs.build(images.LOCAL_BASE, podman)
    base = images.LOCAL_BASE.reference
    version = images.base_python(podman, base, images.LOCAL_BASE.key)
    wheelhouse = Wheelhouse(requirements(repo), version, base)
    build_wheelhouse(wheelhouse, podman)
    tag = _python_tag(version)
    files = images.source_files(repo)
    wheels = wheelhouse.wheels()
    key = _inputs_key(repo, files, wheels, tag)
    path = cache.cache_dir() / "agent-bundles" / key / bundle_name(tag)
    if path.exists():
        return AgentBundle(path, key, tag, cached=True)
    with cache.locked("agent-bundle"):
        if path.exists():
            return AgentBundle(path, key, tag, cached=True)
        with tempfile.TemporaryDirectory(prefix="agent-bundle-", dir=cache.cache_dir()) as tmp:
            work = Path(tmp)
            source = work / "src"
            for rel in files:
                (source / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(repo / rel, source / rel)
            out = work / "wheels"
            argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
            argv += ["--disable-pip-version-check", "--find-links", str(wheelhouse.path)]
            run_tool([*argv, "--wheel-dir", str(out), str(source)], policy.WHEELHOUSE_TIMEOUT)
            staged = work / bundle_name(tag)
            with tarfile.open(staged, "w:gz") as tar:
                for wheel in sorted([*out.glob("*.whl"), *wheels]):
                    tar.add(wheel, arcname=wheel.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(path)
    return AgentBundle(path, key, tag, cached=False)
