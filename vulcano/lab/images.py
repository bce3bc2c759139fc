"""Build the Vulcano image (container/Containerfile) with podman, cached by its inputs.

    built = build_image()          # ImageBuild(reference="localhost/vulcano:<digest>", ...)

The inputs are the Containerfile, the source files that go into the image, the wheel
set and the base image's own inputs; their digest is the local tag, so a second build
with nothing changed is one `podman image exists`. The wheelhouse (wheelhouse.py) is
downloaded on the host for the base's Python, so the build itself runs with
--network=none.

Here the base is made locally (see rootfs.py); for a real deployment pass
``base="docker.io/library/python:3.12-slim"``. The wheels are chosen for the Python the
base itself reports. Run as a program (``python -m vulcano.lab.images``, or
``nox -s image``) it prints the local reference, then the public one it also tagged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vulcano import image as public_image
from vulcano.lab import cache, policy, rootfs
from vulcano.lab.errors import LabError
from vulcano.lab.podman import Podman, available, ulimit_flags
from vulcano.lab.wheelhouse import Wheelhouse, build_wheelhouse, requirements

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = Path("container") / "Containerfile"
LOCAL_REPOSITORY = "localhost/vulcano"
# What of the source tree goes into the image (the Containerfile COPYs these).
SOURCE_ENTRIES = (
    "pyproject.toml",
    "README.md",
    "vulcano",
    "appengine",
    "container",
    "agent",
    "templates",
)
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# The lab builds images and machines for tests; nothing in a deployable imports it, and
# leaving it out means editing the test harness does not rebuild the image.
_SKIP_PATHS = {Path("vulcano") / "lab"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")
# The base made here: Debian bookworm's Python (3.11) and what the agent runs.
SYSTEM_PACKAGES = ("iproute2", "nftables", "ca-certificates")
LOCAL_BASE = rootfs.Rootfs(
    name="vulcano-base",
    packages=("python3", "python3-venv", "passwd", *SYSTEM_PACKAGES),
    changes=('CMD ["python3"]',),
)
# Bumped when what the digest covers changes meaning.
INPUTS_FORMAT = "1"
INPUTS_LABEL = "io.vulcano.image.inputs"


# --- the context ----------------------------------------------------------------------


def source_files(repo: Path = REPO) -> list[Path]:
    """The files of SOURCE_ENTRIES (relative to ``repo``), sorted, caches left out."""
    found: list[Path] = []
    for entry in SOURCE_ENTRIES:
        top = repo / entry
        if top.is_file():
            found.append(Path(entry))
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath).relative_to(repo)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in _SKIP_DIRS
                and not d.endswith(_SKIP_SUFFIXES)
                and here / d not in _SKIP_PATHS
            )
            for name in filenames:
                if not name.endswith(_SKIP_SUFFIXES):
                    found.append((Path(dirpath) / name).relative_to(repo))
    return sorted(found)


@dataclass(frozen=True)
class ImageInputs:
    """Everything the image is built from; ``key`` is their digest."""

    repo: Path
    files: tuple[Path, ...]
    wheels: tuple[Path, ...]
    base: str
    base_key: str
    build_args: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        parts: list[str | bytes] = [INPUTS_FORMAT, "base:" + self.base, "base-key:" + self.base_key]
        parts += [f"arg:{k}={v}" for k, v in self.build_args]
        for rel in self.files:
            parts += ["file:" + rel.as_posix(), (self.repo / rel).read_bytes()]
        for wheel in self.wheels:
            parts += ["wheel:" + wheel.name, wheel.read_bytes()]
        return cache.digest(parts)


@contextlib.contextmanager
def _staged_context(inputs: ImageInputs) -> Iterator[Path]:
    """A build context holding exactly the inputs: the source files and wheels/."""
    with tempfile.TemporaryDirectory(prefix="vulcano-context-", dir=cache.cache_dir()) as tmp:
        context = Path(tmp)
        for rel in inputs.files:
            target = context / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(inputs.repo / rel, target)
        wheels = context / "wheels"
        wheels.mkdir()
        for wheel in inputs.wheels:
            try:
                os.link(wheel, wheels / wheel.name)
            except OSError:
                shutil.copyfile(wheel, wheels / wheel.name)
        yield context


# --- the build ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageBuild:
    """The Vulcano image the lab has: its references and how it came to be."""

    reference: str  # localhost/vulcano:<inputs digest>
    public: str  # the public name it is also tagged with
    key: str
    cached: bool
    seconds: float
    base: str


def base_python(podman: Podman, base: str, base_key: str) -> str:
    """The base image's Python version (``3.11.2``), asked of its own interpreter once."""
    remembered = cache.cache_dir() / "base-python" / cache.digest([base, base_key])
    if remembered.exists():
        return remembered.read_text().strip()
    done = podman.run(
        "run",
        "--rm",
        "--pull=never",
        "--network=none",
        *ulimit_flags(),
        base,
        "python3",
        "-c",
        "import platform; print(platform.python_version())",
    )
    version = done.stdout.strip()
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(version + "\n")
    return version


def build_image(
    repo: Path = REPO,
    *,
    base: str | None = None,
    public: str = public_image.REFERENCE,
    podman: Podman | None = None,
    force: bool = False,
) -> ImageBuild:
    """Build the image unless one with the same inputs exists; tag it ``public`` too.

    ``base`` None means the base made locally (Debian bookworm's Python 3.11). ``force``
    rebuilds the image even so (the base and the wheelhouse stay cached).
    """
    started = time.monotonic()
    podman = podman or available()
    if base is None:
        rootfs.build(LOCAL_BASE, podman)
        base = LOCAL_BASE.reference
        base_key = LOCAL_BASE.key
        local_base = True
    else:
        if not podman.image_exists(base):
            podman.run("pull", base, timeout=policy.IMAGE_BUILD_TIMEOUT)
        base_key = podman.image_id(base)  # the tag may move
        local_base = False
    python_version = base_python(podman, base, base_key)
    wheelhouse = Wheelhouse(requirements(repo), python_version, base)
    build_wheelhouse(wheelhouse, podman)
    build_args = (
        ("BASE", base),
        ("VERSION", public_image.VERSION),
        ("SYSTEM_PACKAGES", " ".join(SYSTEM_PACKAGES)),
    )
    inputs = ImageInputs(
        repo=repo,
        files=tuple(source_files(repo)),
        wheels=tuple(wheelhouse.wheels()),
        base=base,
        base_key=base_key,
        build_args=build_args,
    )
    key = inputs.key
    reference = f"{LOCAL_REPOSITORY}:{key}"

    def done(cached: bool) -> ImageBuild:
        podman.run("tag", reference, public)
        return ImageBuild(reference, public, key, cached, time.monotonic() - started, base)

    if not force and podman.image_exists(reference):
        return done(cached=True)
    previous = podman.image_id(reference)
    with cache.locked("image"):
        if not force and podman.image_exists(reference):
            return done(cached=True)
        with _staged_context(inputs) as context:
            argv = ["build", "--file", str(context / CONTAINERFILE), "--tag", reference]
            argv += [flag for k, v in build_args for flag in ("--build-arg", f"{k}={v}")]
            argv += ["--label", f"{INPUTS_LABEL}={key}", *ulimit_flags()]
            # No layer cache: the digest is the cache, and every source change would
            # otherwise leave a dangling build-stage image of a few hundred MB behind.
            argv += ["--layers=false"]
            if local_base:
                # Nothing to fetch: the base is here and has every system package.
                argv += ["--pull=never", "--network=none"]
            log.info("building %s", reference)
            podman.run(*argv, str(context), timeout=policy.IMAGE_BUILD_TIMEOUT)
    built = done(cached=False)
    if previous and previous != podman.image_id(reference):
        # A forced rebuild left the old build of these same inputs untagged: ours to drop.
        podman.run("image", "rm", previous, check=False)
    return built


VENV = "/opt/vulcano"


def export_venv(podman: Podman, reference: str, dest: Path) -> Path:
    """Copy the image's /opt/vulcano (the venv, templates) to ``dest``/vulcano.

    Built on the local base, it is a venv for Debian bookworm's /usr/bin/python3, so a
    Debian 12 machine can run it as it is: a bundle, one way an agent can reach a node.
    """
    dest.mkdir(parents=True, exist_ok=True)
    created = podman.run("create", "--pull=never", reference, "true").stdout.strip()
    try:
        podman.run("cp", f"{created}:{VENV}", str(dest), timeout=policy.IMPORT_TIMEOUT)
    finally:
        podman.run("rm", "--force", created, check=False)
    return dest / Path(VENV).name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vulcano.lab.images",
        description="Build the Vulcano image with podman (cached by its inputs); print its "
        "local reference, then the public one it is also tagged with.",
    )
    parser.add_argument("--base", help="a public base image, e.g. python:3.12-slim")
    parser.add_argument("--tag", default=public_image.REFERENCE, help="the public reference")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        built = build_image(base=args.base, public=args.tag)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    how = "cached" if built.cached else "built"
    print(f"{how} in {built.seconds:.1f}s on {built.base}", file=sys.stderr)
    print(built.reference)
    print(built.public)
    return 0


if __name__ == "__main__":
    sys.exit(main())
