"""The systemd runner (systemd is PID 1): runtime units in /run/systemd/system driven
with systemctl, ActiveState/SubState read back with ``systemctl show``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from agent import policy
from agent.units.runners.base import RunContext, RunStatus


class SystemdRunner:
    """Drives systemd (PID 1): runtime units in /run/systemd/system, systemctl, journalctl."""

    def __init__(self, unit_dir: Path = Path("/run/systemd/system")) -> None:
        self.unit_dir = unit_dir
        self._ours = unit_dir / ".vulcano"
        self._ours.mkdir(parents=True, exist_ok=True)

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["systemctl", *args],
            capture_output=True,
            text=True,
            timeout=policy.SYSTEMCTL_TIMEOUT,
            check=False,
        )

    def load(self, ctx: RunContext, text: str) -> None:
        (self.unit_dir / ctx.name).write_text(text)
        dropin = self.unit_dir / f"{ctx.name}.d"
        if ctx.netns:
            dropin.mkdir(exist_ok=True)
            (dropin / "50-vulcano-sandbox.conf").write_text(
                f"[Service]\nNetworkNamespacePath=/run/netns/{ctx.netns}\n"
            )
        (self._ours / ctx.name).write_text(ctx.hash)
        self._systemctl("daemon-reload")

    def start(self, name: str) -> None:
        self._systemctl("--no-block", "start", name)

    def stop(self, name: str) -> None:
        self._systemctl("--no-block", "stop", name)

    def unload(self, name: str) -> None:
        self._systemctl("stop", name)
        for p in (self.unit_dir / name, self._ours / name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.unit_dir / f"{name}.d", ignore_errors=True)
        self._systemctl("daemon-reload")

    def loaded(self) -> list[str]:
        return sorted(p.name for p in self._ours.iterdir())

    def status(self, name: str) -> RunStatus:
        out = self._systemctl(
            "show", "-p", "LoadState,ActiveState,SubState,StateChangeTimestampMonotonic", name
        ).stdout
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            digest = (self._ours / name).read_text()
        except OSError:
            digest = ""
        mono = int(props.get("StateChangeTimestampMonotonic", "0") or 0) / 1e6
        since = time.time() - (time.monotonic() - mono) if mono else 0.0
        return RunStatus(
            props.get("LoadState", "not-found"),
            props.get("ActiveState", "inactive"),
            props.get("SubState", "dead"),
            since,
            hash=digest,
        )

    def journal(self, name: str) -> tuple[int, list[str]]:
        out = subprocess.run(
            ["journalctl", "-u", name, "-n", str(policy.JOURNAL_LINES), "-o", "cat", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=policy.SYSTEMCTL_TIMEOUT,
            check=False,
        ).stdout.splitlines()
        return len(out), out

    def fence(self, deadline: float) -> None:
        return None  # systemd keeps units across agent crashes; MachineUnits fences

    def reap(self, timeout: float = 0.0) -> None:
        return None
