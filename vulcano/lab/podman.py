"""podman as the lab runs it: root, the runc runtime, rlimits this machine may set.

Facts behind the flags (../shared/MACHINES.md, and measured): crun refuses a hybrid
cgroup v1 host, so every call selects runc; the machine has no CAP_SYS_RESOURCE, so
podman's default rlimits ("nofile=1048576") fail with EPERM and we ask for the current
hard limits instead. RLIMIT_NPROC is capped lower still: runc failed to set anything
above 32768 here even below the hard limit.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from vulcano.lab import policy
from vulcano.lab.errors import LabError, PodmanError

RUNTIME = "runc"
NOFILE_CAP = 1 << 20
NPROC_CAP = 32768


def _limit(kind: int, cap: int) -> int:
    _, hard = resource.getrlimit(kind)
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def ulimit_flags() -> list[str]:
    """``--ulimit`` flags at or below what this process may set, for build and run."""
    nofile = _limit(resource.RLIMIT_NOFILE, NOFILE_CAP)
    nproc = _limit(resource.RLIMIT_NPROC, NPROC_CAP)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def run_tool(
    argv: Sequence[str],
    timeout: float,
    *,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; PodmanError (with that output) when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if exc.stdout else ""
        raise PodmanError(list(argv), -1, f"timed out after {timeout:.0f}s\n{output}") from None
    if check and done.returncode != 0:
        raise PodmanError(list(argv), done.returncode, done.stdout + done.stderr)
    return done


@dataclass(frozen=True)
class Podman:
    """The podman binary, always with ``--runtime runc``."""

    binary: str = "podman"

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--runtime", RUNTIME, *args]

    def run(
        self,
        *args: str,
        timeout: float = policy.PODMAN_TIMEOUT,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_tool(self.argv(*args), timeout, check=check, input=input)

    def image_exists(self, reference: str) -> bool:
        return self.run("image", "exists", reference, check=False).returncode == 0

    def image_inspect(self, reference: str) -> dict[str, object]:
        out = self.run("image", "inspect", reference).stdout
        data: list[dict[str, object]] = json.loads(out)
        return data[0]

    def image_id(self, reference: str) -> str:
        """The image's id, or "" when there is no such image."""
        if not self.image_exists(reference):
            return ""
        return str(self.image_inspect(reference).get("Id", ""))

    def image_size(self, reference: str) -> int:
        """Bytes the image's layers take (podman's own count)."""
        size = self.image_inspect(reference).get("Size", 0)
        return int(size) if isinstance(size, int) else 0


def available() -> Podman:
    """The podman to use; LabError when podman or runc is missing."""
    for tool in ("podman", RUNTIME):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed (Debian packages podman, runc)")
    return Podman()
