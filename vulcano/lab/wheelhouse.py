"""The wheelhouse an image is built from: every wheel it needs, for the base's Python.

Downloaded on the host (PyPI is reachable from the host, not from inside a build) into
the lab cache, once per (requirements, Python, architecture, base), then proved
complete by the base's own pip, offline.
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vulcano.lab import cache, policy
from vulcano.lab.errors import LabError, PodmanError
from vulcano.lab.podman import Podman, run_tool, ulimit_flags

log = logging.getLogger(__name__)

# Rounds of "what does the base's pip still miss" before giving up.
_ROUNDS = 5


def requirements(repo: Path) -> tuple[str, ...]:
    """Every dependency of the project, plus what building it needs (setuptools)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return (*project["project"]["dependencies"], *build, "wheel")


def _platforms(machine: str) -> tuple[str, ...]:
    # Debian bookworm's glibc is 2.36; pip needs each manylinux tag it may take named.
    tags = ["manylinux_2_36", "manylinux_2_34", "manylinux_2_28", "manylinux_2_17"]
    return (*(f"{tag}_{machine}" for tag in tags), f"manylinux2014_{machine}", f"linux_{machine}")


@dataclass(frozen=True)
class Wheelhouse:
    """Wheels of ``requirements`` for the Python of ``base`` (CPython ``python_version``)."""

    requirements: tuple[str, ...]
    python_version: str
    base: str
    machine: str = platform.machine()

    @property
    def key(self) -> str:
        return cache.digest(
            ["wheelhouse", self.python_version, self.machine, self.base, *self.requirements]
        )

    @property
    def path(self) -> Path:
        return cache.cache_dir() / "wheels" / self.key

    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))


_MISSING_RE = re.compile(r"No matching distribution found for (\S[^;\n]*)")


def _download(spec: Wheelhouse, dest: Path, requirements: list[str]) -> None:
    abi = "cp" + "".join(spec.python_version.split(".")[:2])
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        "--only-binary=:all:",
        "--python-version",
        spec.python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
        *(flag for p in _platforms(spec.machine) for flag in ("--platform", p)),
        *requirements,
    ]
    run_tool(argv, policy.WHEELHOUSE_TIMEOUT)


def _missing_in_base(spec: Wheelhouse, wheels: Path, podman: Podman) -> list[str]:
    """What the base's own pip, offline, finds missing to install the requirements."""
    script = (
        "python3 -m venv /tmp/v && /tmp/v/bin/pip install --disable-pip-version-check "
        '--no-index --find-links=/wheels --dry-run --quiet "$@"'
    )
    done = podman.run(
        "run",
        "--rm",
        "--pull=never",
        "--network=none",
        *ulimit_flags(),
        "--volume",
        f"{wheels}:/wheels:ro",
        spec.base,
        "sh",
        "-c",
        script,
        "sh",
        *spec.requirements,
        timeout=policy.WHEELHOUSE_TIMEOUT,
        check=False,
    )
    if done.returncode == 0:
        return []
    missing = [m.strip() for m in _MISSING_RE.findall(done.stdout + done.stderr)]
    if not missing:
        raise PodmanError(["pip", "install", "--dry-run"], done.returncode, done.stderr)
    return missing


def build_wheelhouse(spec: Wheelhouse, podman: Podman) -> Path:
    """Download the wheels (once per key) and prove the base installs from them offline.

    pip on the host evaluates environment markers (``python_full_version < "3.11.3"``)
    for the host's Python, not the base's; so the base's own pip checks the set, and
    what it misses is downloaded too, until it finds nothing missing.
    """
    marker = spec.path / ".complete"
    if marker.exists():
        return spec.path
    with cache.locked("wheels"):
        if marker.exists():
            return spec.path
        staging = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache.cache_dir()))
        try:
            log.info("downloading the wheelhouse for Python %s", spec.python_version)
            _download(spec, staging, list(spec.requirements))
            for _ in range(_ROUNDS):
                missing = _missing_in_base(spec, staging, podman)
                if not missing:
                    break
                log.info("the base's pip also needs %s", ", ".join(missing))
                _download(spec, staging, missing)
            else:
                raise LabError(f"wheelhouse still incomplete after {_ROUNDS} rounds")
            (staging / ".complete").write_text(" ".join(spec.requirements) + "\n")
            spec.path.parent.mkdir(parents=True, exist_ok=True)
            if spec.path.exists():
                shutil.rmtree(spec.path)
            staging.rename(spec.path)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return spec.path
