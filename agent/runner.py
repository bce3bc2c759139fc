"""Runners: what turns "this unit should be launched here" into processes.

- ``BuiltinRunner`` (no systemd as PID 1): one ``agent.unitshim`` supervisor per unit.
- ``SystemdRunner`` (systemd is PID 1): a runtime unit in /run/systemd/system driven
  with systemctl, ActiveState/SubState read back with ``systemctl show``.
- ``NoopRunner``: remembers what it was told; for the scheduling benchmark.

All three answer the same questions, so the unit agent does not care which it has.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent import policy
from vulcano.records import RUNNING_STATES


@dataclass(frozen=True)
class RunContext:
    """Where a unit runs: what the specifiers and the sandbox need."""

    name: str
    hash: str
    hostname: str
    machine_id: str
    netns: str | None = None


@dataclass(frozen=True)
class RunStatus:
    load: str  # loaded | not-found
    active: str  # active | inactive | activating | deactivating | failed
    sub: str  # running | exited | dead | failed | start-pre | auto-restart | stop
    since: float = 0.0
    reason: str = ""
    hash: str = ""


class Runner(Protocol):
    def load(self, ctx: RunContext, text: str) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def unload(self, name: str) -> None: ...
    def loaded(self) -> list[str]: ...
    def status(self, name: str) -> RunStatus: ...
    def journal(self, name: str) -> tuple[int, list[str]]: ...
    def fence(self, deadline: float) -> None: ...


def systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")


# --- no-op ---------------------------------------------------------------------------


class NoopRunner:
    """Pretends: start is instantly running, stop instantly dead. For benchmarks."""

    def __init__(self) -> None:
        self._units: dict[str, tuple[RunContext, bool, float]] = {}

    def load(self, ctx: RunContext, text: str) -> None:
        old = self._units.get(ctx.name)
        self._units[ctx.name] = (ctx, old[1] if old else False, old[2] if old else time.time())

    def start(self, name: str) -> None:
        ctx, running, _ = self._units[name]
        if not running:
            self._units[name] = (ctx, True, time.time())

    def stop(self, name: str) -> None:
        ctx, running, _ = self._units[name]
        if running:
            self._units[name] = (ctx, False, time.time())

    def unload(self, name: str) -> None:
        self._units.pop(name, None)

    def loaded(self) -> list[str]:
        return list(self._units)

    def status(self, name: str) -> RunStatus:
        if name not in self._units:
            return RunStatus("not-found", "inactive", "dead")
        ctx, running, since = self._units[name]
        if running:
            return RunStatus("loaded", "active", "running", since, hash=ctx.hash)
        return RunStatus("loaded", "inactive", "dead", since, hash=ctx.hash)

    def journal(self, name: str) -> tuple[int, list[str]]:
        return 0, []

    def fence(self, deadline: float) -> None:
        return None


# --- built-in ------------------------------------------------------------------------


def _pid_is_shim(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return b"agent.unitshim" in cmdline and state not in {"Z", "X"}


class BuiltinRunner:
    """Runs units itself, one shim process per running unit, state in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "units"
        self.root.mkdir(parents=True, exist_ok=True)
        self.fence_file = self.root / "fence"
        self._spawning: dict[str, subprocess.Popen[bytes]] = {}
        self._journals: dict[str, tuple[int, int, collections.deque[str]]] = {}

    def _dir(self, name: str) -> Path:
        return self.root / name

    def fence(self, deadline: float) -> None:
        tmp = self.fence_file.with_suffix(".tmp")
        tmp.write_text(f"{deadline:.3f}\n")
        tmp.replace(self.fence_file)

    def load(self, ctx: RunContext, text: str) -> None:
        d = self._dir(ctx.name)
        d.mkdir(exist_ok=True)
        (d / "unit").write_text(text)
        context = {
            "name": ctx.name,
            "hash": ctx.hash,
            "hostname": ctx.hostname,
            "machine_id": ctx.machine_id,
            "netns": ctx.netns,
            "fence_file": str(self.fence_file),
        }
        (d / "context.json").write_text(json.dumps(context))

    def _shim_pid(self, name: str) -> int | None:
        spawning = self._spawning.get(name)
        if spawning is not None:
            if spawning.poll() is None:
                return spawning.pid  # still forking the shim: count it as alive
            del self._spawning[name]
        try:
            pid = int((self._dir(name) / "shim.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _pid_is_shim(pid) else None

    def start(self, name: str) -> None:
        if self._shim_pid(name) is not None:
            return
        d = self._dir(name)
        with contextlib.suppress(FileNotFoundError):
            (d / "status.json").unlink()
        with contextlib.suppress(FileNotFoundError):
            (d / "shim.pid").unlink()
        status = {"active": "activating", "sub": "start-pre", "since": time.time()}
        (d / "status.json").write_text(json.dumps(status))
        with open(d / "journal.log", "ab") as log:
            # --detach: the shim forks away (outliving the agent, adopted after a
            # restart) and writes its pid; we do not wait for that (Python starts in
            # ~0.1 s, and a pass over many units must not stall), the spawner is reaped
            # by a later call.
            self._spawning[name] = subprocess.Popen(
                [sys.executable, "-m", "agent.unitshim", "--detach", str(d)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(Path(__file__).resolve().parent.parent),
            )

    def reap(self, timeout: float = 0.0) -> None:
        """Collect spawners that have finished (waiting up to ``timeout`` for the rest)."""
        deadline = time.monotonic() + timeout
        for name, proc in list(self._spawning.items()):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue
            self._spawning.pop(name, None)

    def stop(self, name: str) -> None:
        spawning = self._spawning.pop(name, None)
        if spawning is not None:
            # let the spawner hand over: signalling it instead of the shim would miss
            with contextlib.suppress(subprocess.TimeoutExpired):
                spawning.wait(policy.SHIM_SPAWN_TIMEOUT)
        pid = self._shim_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop_now(self, name: str, timeout: float = policy.UNIT_STOP_TIMEOUT + 2) -> None:
        """Stop and wait until the shim (and so the unit) is gone."""
        self.stop(name)
        deadline = time.monotonic() + timeout
        while self._shim_pid(name) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = self._shim_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # its children die with it (PDEATHSIG)

    def unload(self, name: str) -> None:
        if self._shim_pid(name) is not None:
            self.stop(name)
            return  # removed on a later call, once the shim is gone
        shutil.rmtree(self._dir(name), ignore_errors=True)
        self._journals.pop(name, None)

    def loaded(self) -> list[str]:
        self.reap()
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def status(self, name: str) -> RunStatus:
        d = self._dir(name)
        if not d.is_dir():
            return RunStatus("not-found", "inactive", "dead")
        try:
            ctx = json.loads((d / "context.json").read_text())
        except (OSError, ValueError):
            ctx = {}
        try:
            st = json.loads((d / "status.json").read_text())
        except (OSError, ValueError):
            st = {"active": "inactive", "sub": "dead", "since": 0.0}
        alive = self._shim_pid(name) is not None
        active, sub = st.get("active", "inactive"), st.get("sub", "dead")
        if not alive and active in RUNNING_STATES:
            active, sub = "failed", "failed"  # the shim died under it
            st["reason"] = "supervisor exited unexpectedly"
        return RunStatus(
            "loaded",
            active,
            sub,
            float(st.get("since", 0.0)),
            str(st.get("reason", "")),
            str(ctx.get("hash", "")),
        )

    def journal(self, name: str) -> tuple[int, list[str]]:
        """(lines printed so far, the last lines), reading only what is new."""
        seq, offset, tail = self._journals.get(
            name, (0, 0, collections.deque(maxlen=policy.JOURNAL_LINES))
        )
        path = self._dir(name) / "journal.log"
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return seq, list(tail)
        end = data.rfind(b"\n") + 1
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            tail.append(line)
            seq += 1
        self._journals[name] = (seq, offset + end, tail)
        return seq, list(tail)


# --- systemd -------------------------------------------------------------------------


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
        return None  # systemd keeps units across agent crashes; the unit agent fences
