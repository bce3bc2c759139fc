"""Debian root filesystems made locally (no registry here), imported as podman images.

    recipe = Rootfs("vulcano-base", packages=("python3", ...))
    reference = build(recipe, podman)        # localhost/vulcano-base:<digest of inputs>

`mmdebstrap --variant=minbase` fetches from the Debian mirror the host's apt already
uses (read from its sources), runs the recipe's hooks in the new root, and writes a
tarball that `podman import` turns into an image. The image's tag is the digest of the
recipe and the sources, so an unchanged recipe is built once per machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vulcano.lab import cache, policy
from vulcano.lab.errors import LabError
from vulcano.lab.podman import Podman, run_tool

log = logging.getLogger(__name__)

SUITE = "bookworm"
APT_DIR = Path("/etc/apt")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# Bumped when the way a recipe becomes an image changes, so old images are not reused.
RECIPE_FORMAT = "1"
INPUTS_LABEL = "io.vulcano.lab.inputs"


def _one_line_sources(text: str) -> list[tuple[str, str, str, str]]:
    """(options, uri, suite, components) of each `deb` line of a sources.list."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        options = ""
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
        words = rest.split()
        if len(words) >= 3:
            found.append((options.strip(), words[0], words[1], " ".join(words[2:])))
    return found


def _deb822_sources(text: str) -> list[tuple[str, str, str, str]]:
    """The same, from a deb822 .sources file (stanzas of Types/URIs/Suites/Components)."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw:
                continue
            key, _, value = raw.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        signed = fields.get("signed-by", "")
        options = f"signed-by={signed}" if signed.startswith("/") else ""
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append((options, uri, suite, fields.get("components", "main")))
    return found


def apt_sources(suite: str = SUITE, apt_dir: Path = APT_DIR) -> tuple[str, ...]:
    """The host's Debian sources for ``suite`` (and -updates, -security) as `deb` lines."""
    entries: list[tuple[str, str, str, str]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            entries += _deb822_sources(text)
        elif path.suffix == ".list" or path.name == "sources.list":
            entries += _one_line_sources(text)
    lines = []
    for options, uri, entry_suite, components in entries:
        if entry_suite != suite and not entry_suite.startswith(f"{suite}-"):
            continue
        if "main" not in components.split():
            continue
        prefix = f"deb [{options}]" if options else "deb"
        line = f"{prefix} {uri} {entry_suite} main"
        if line not in lines:
            lines.append(line)
    return tuple(lines) or (f"deb {FALLBACK_MIRROR} {suite} main",)


@dataclass(frozen=True)
class Rootfs:
    """What a locally made image holds: packages, hooks run in its root, image settings."""

    name: str
    packages: tuple[str, ...]
    # Shell commands mmdebstrap runs on the host after installing; "$1" is the new root.
    hooks: tuple[str, ...] = ()
    # `podman import --change` instructions (CMD, ENV, LABEL ...).
    changes: tuple[str, ...] = ()
    suite: str = SUITE
    sources: tuple[str, ...] = field(default_factory=apt_sources)

    @property
    def key(self) -> str:
        return cache.digest(
            [
                RECIPE_FORMAT,
                self.name,
                self.suite,
                *("package:" + p for p in self.packages),
                *("hook:" + h for h in self.hooks),
                *("change:" + c for c in self.changes),
                *("source:" + s for s in self.sources),
            ]
        )

    @property
    def reference(self) -> str:
        return f"localhost/{self.name}:{self.key}"


@dataclass(frozen=True)
class Built:
    """An image the lab has: its reference, whether it was already there, build seconds."""

    reference: str
    cached: bool
    seconds: float


def build(recipe: Rootfs, podman: Podman, *, force: bool = False) -> Built:
    """The recipe's image, built unless an image with its digest exists (or ``force``)."""
    started = time.monotonic()
    if not force and podman.image_exists(recipe.reference):
        return Built(recipe.reference, cached=True, seconds=time.monotonic() - started)
    if shutil.which("mmdebstrap") is None:
        raise LabError("mmdebstrap is not installed (Debian package mmdebstrap)")
    with cache.locked(f"rootfs-{recipe.name}"):
        if not force and podman.image_exists(recipe.reference):  # built meanwhile
            return Built(recipe.reference, cached=True, seconds=time.monotonic() - started)
        previous = podman.image_id(recipe.reference)
        work = Path(tempfile.mkdtemp(prefix=f"{recipe.name}-", dir=cache.cache_dir()))
        try:
            tarball = work / "rootfs.tar"
            log.info("building %s with mmdebstrap", recipe.reference)
            run_tool(_mmdebstrap_argv(recipe, tarball), policy.ROOTFS_BUILD_TIMEOUT)
            changes = [*recipe.changes, f"LABEL {INPUTS_LABEL}={recipe.key}"]
            change_flags = [flag for c in changes for flag in ("--change", c)]
            podman.run(
                "import",
                *change_flags,
                str(tarball),
                recipe.reference,
                timeout=policy.IMPORT_TIMEOUT,
            )
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
        if previous and previous != podman.image_id(recipe.reference):
            # A forced rebuild left the old import untagged: ours to drop (podman keeps
            # it if something still uses it).
            podman.run("image", "rm", previous, check=False)
    return Built(recipe.reference, cached=False, seconds=time.monotonic() - started)


def _mmdebstrap_argv(recipe: Rootfs, tarball: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        f"--include={','.join(recipe.packages)}",
    ]
    argv += [f"--customize-hook={hook}" for hook in recipe.hooks]
    return [*argv, recipe.suite, str(tarball), *recipe.sources]


def write_file_hook(path: str, content: str, mode: int = 0o644) -> str:
    """A hook that writes ``content`` to ``path`` inside the new root."""
    if not path.startswith("/") or "'" in path:
        raise ValueError(f"bad path for a rootfs hook: {path!r}")
    quoted = "'" + content.replace("'", "'\"'\"'") + "'"
    return (
        f"mkdir -p \"$1\"'{os.path.dirname(path)}' && "
        f"printf '%s' {quoted} > \"$1\"'{path}' && chmod {mode:o} \"$1\"'{path}'"
    )
