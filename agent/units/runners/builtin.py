"""The built-in runner (no systemd as PID 1): one supervisor process per running unit.

Each unit has a directory under <state-dir>/units/ with its unit file, its context, the
status its supervisor (``python -m agent.units.supervisor``) writes and its journal. The
supervisors outlive the agent, so a restarted agent adopts them; the fence file tells
them until when the machine lease is held.
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
from pathlib import Path

from agent import policy
from agent.units.runners.base import RunContext, RunStatus
from vulcano.records import RUNNING_STATES

# Where `python -m agent.units.supervisor` finds the agent package.
_IMPORT_ROOT = Path(__file__).resolve().parents[3]


def _is_supervisor(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return b"agent.units.supervisor" in cmdline and state not in {"Z", "X"}


class BuiltinRunner:
    """Runs units itself, one supervisor process per running unit, state in ``state_dir``."""

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

    def _supervisor_pid(self, name: str) -> int | None:
        spawning = self._spawning.get(name)
        if spawning is not None:
            if spawning.poll() is None:
                return spawning.pid  # still forking the supervisor: count it as alive
            del self._spawning[name]
        try:
            pid = int((self._dir(name) / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _is_supervisor(pid) else None

    def start(self, name: str) -> None:
        if self._supervisor_pid(name) is not None:
            return
        d = self._dir(name)
        with contextlib.suppress(FileNotFoundError):
            (d / "status.json").unlink()
        with contextlib.suppress(FileNotFoundError):
            (d / "supervisor.pid").unlink()
        status = {"active": "activating", "sub": "start-pre", "since": time.time()}
        (d / "status.json").write_text(json.dumps(status))
        with open(d / "journal.log", "ab") as log:
            # --detach: the supervisor forks away (outliving the agent, adopted after a
            # restart) and writes its pid; we do not wait for that (Python starts in
            # ~0.1 s, and a pass over many units must not stall), the spawner is reaped
            # by a later call.
            self._spawning[name] = subprocess.Popen(
                [sys.executable, "-m", "agent.units.supervisor", "--detach", str(d)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(_IMPORT_ROOT),
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
            # let the spawner hand over: signalling it instead of the supervisor would miss
            with contextlib.suppress(subprocess.TimeoutExpired):
                spawning.wait(policy.SUPERVISOR_SPAWN_TIMEOUT)
        pid = self._supervisor_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop_now(self, name: str, timeout: float = policy.UNIT_STOP_TIMEOUT + 2) -> None:
        """Stop and wait until the supervisor (and so the unit) is gone."""
        self.stop(name)
        deadline = time.monotonic() + timeout
        while self._supervisor_pid(name) is not None and time.monotonic() < deadline:
            time.sleep(policy.SUPERVISOR_EXIT_POLL)
        pid = self._supervisor_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # its children die with it (PDEATHSIG)

    def unload(self, name: str) -> None:
        if self._supervisor_pid(name) is not None:
            self.stop(name)
            return  # removed on a later call, once the supervisor is gone
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
        alive = self._supervisor_pid(name) is not None
        active, sub = st.get("active", "inactive"), st.get("sub", "dead")
        if not alive and active in RUNNING_STATES:
            active, sub = "failed", "failed"  # the supervisor died under it
            st["reason"] = "supervisor exited unexpectedly"
        return RunStatus(
            "loaded",
            active,
            sub,
            float(st.get("since", 0.0)),
            str(st.get("reason", "")),
            str(ctx.get("hash", "")),
        )

    def note(self, name: str, text: str) -> None:
        """A line in the unit's journal, as its supervisor writes its own."""
        with contextlib.suppress(OSError), open(self._dir(name) / "journal.log", "ab") as f:
            f.write(f"[vulcano] {name}: {text}\n".encode())

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
