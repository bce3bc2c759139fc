"""One unit's supervisor when there is no systemd: ``python -m agent.units.supervisor DIR``.

The built-in runner starts one supervisor per running unit, in its own session, so
units survive an agent restart and are adopted by the next agent. It does what systemd
would for one service (the [Service] settings agent/units/service_config.py reads):
ExecStartPre/ExecStart/ExecStartPost/ExecStop/ExecStopPost, Type=simple|oneshot with
RemainAfterExit=, Restart=/RestartSec=, TimeoutStopSec=, output to the unit's journal
file. Each command runs in its own process group (killed as a group on stop) and dies
with the supervisor (PR_SET_PDEATHSIG), so stopping leaves nothing behind.

Fencing: the agent writes a deadline (CLOCK_MONOTONIC, shared by every process) into the
fence file while its machine lease is certainly held. If the agent dies or is cut off,
the deadline passes and the supervisor stops the unit by itself, before the lease can
expire and the engine can start the unit elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent import policy
from agent.units.service_config import Command, ServiceConfig, expand_env, service_config
from vulcano import errors

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervisor:
    """Runs one unit's commands until stopped or fenced, writing its status."""

    def __init__(self, unit_dir: Path) -> None:
        self.dir = unit_dir
        self.ctx: dict[str, Any] = json.loads((unit_dir / "context.json").read_text())
        self.name: str = self.ctx["name"]
        self.stopping = False
        self.fenced = False
        self.main: subprocess.Popen[bytes] | None = None
        self.journal = open(unit_dir / "journal.log", "ab", buffering=0)  # noqa: SIM115

    # --- status -----------------------------------------------------------------

    def status(self, active: str, sub: str, reason: str = "") -> None:
        data = {
            "active": active,
            "sub": sub,
            "since": time.time(),
            "supervisor_pid": os.getpid(),
            "main_pid": self.main.pid if self.main and self.main.poll() is None else None,
            "reason": reason,
        }
        tmp = self.dir / "status.json.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self.dir / "status.json")

    def note(self, text: str) -> None:
        self.journal.write(f"[vulcano] {self.name}: {text}\n".encode())

    # --- fence & signals --------------------------------------------------------

    def fence_ok(self) -> bool:
        path = self.ctx.get("fence_file")
        if not path:
            return True
        try:
            deadline = float(Path(path).read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        return time.monotonic() < deadline

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def should_stop(self) -> bool:
        if not self.stopping and not self.fence_ok():
            self.fenced = True
            self.stopping = True
            self.note("machine lease not confirmed in time: stopping (fenced)")
        return self.stopping

    # --- processes --------------------------------------------------------------

    def spawn(self, cmd: Command, cfg: ServiceConfig) -> subprocess.Popen[bytes]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": os.environ.get("HOME", "/root"),
            "INVOCATION_ID": os.urandom(16).hex(),
            **cfg.environment,
        }
        argv = expand_env(cmd.argv, env)
        netns = self.ctx.get("netns")
        if netns:
            # only the network namespace, as systemd's NetworkNamespacePath=: `ip netns
            # exec` would also give the unit a private mount namespace with a fresh /sys,
            # without the cgroup mounts a container runtime (runc) needs
            argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
        cwd = cfg.working_directory or "/"
        if not os.path.isdir(cwd):
            if not cfg.working_directory_optional:
                raise FileNotFoundError(2, f"WorkingDirectory={cwd} does not exist")
            cwd = "/"
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.journal,
            stderr=self.journal,
            start_new_session=True,  # its own process group: stopped as a group
            preexec_fn=_die_with_parent,  # safe: the supervisor is single-threaded
        )

    def kill_group(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        if self.fenced:
            timeout = 0.0  # fenced: no grace, the engine may start it elsewhere soon
        if proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of an exited leader
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(policy.SUPERVISOR_EXIT_POLL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def run_sync(self, cmd: Command, cfg: ServiceConfig) -> bool:
        """Run one command to its end (or until we are told to stop); True on success."""
        try:
            proc = self.spawn(cmd, cfg)
        except OSError as exc:
            self.note(f"cannot run {shlex.join(cmd.argv)}: {exc.strerror}")
            return cmd.ignore_failure
        while proc.poll() is None:
            if self.should_stop():
                self.kill_group(proc, cfg.timeout_stop)
                return False
            time.sleep(policy.SUPERVISOR_FENCE_CHECK)
        self.kill_group(proc, 0)
        if proc.returncode != 0 and not cmd.ignore_failure:
            self.note(f"{shlex.join(cmd.argv)} exited with status {proc.returncode}")
            return False
        return True

    # --- the service ------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        try:
            cfg = service_config((self.dir / "unit").read_text(), self.name, self.ctx)
        except (errors.UnitFileError, OSError) as exc:
            self.note(f"cannot start: {exc}")
            self.status("failed", "failed", str(exc))
            return 1
        if not cfg.start:
            self.status("failed", "failed", "no ExecStart=")
            return 1
        while True:
            result = self._once(cfg)
            if self.stopping:
                break
            if not self._restart_wanted(cfg.restart, result):
                break
            self.status("activating", "auto-restart")
            deadline = time.monotonic() + cfg.restart_sec
            while time.monotonic() < deadline and not self.should_stop():
                time.sleep(min(policy.SUPERVISOR_FENCE_CHECK, cfg.restart_sec))
            if self.stopping:
                break
        for cmd in cfg.stop_post:
            self.run_sync(Command(cmd.argv, True), cfg)
        if self.fenced:
            self.status("inactive", "dead", "fenced: machine lease not confirmed")
        elif self.stopping or result == "success":
            self.status("inactive", "dead")
        else:
            self.status("failed", "failed", result)
        return 0

    @staticmethod
    def _restart_wanted(policy_: str, result: str) -> bool:
        if policy_ == "always":
            return True
        if policy_ == "on-success":
            return result == "success"
        if policy_ in {"on-failure", "on-abnormal", "on-abort"}:
            return result != "success"
        return False

    def _once(self, cfg: ServiceConfig) -> str:
        self.status("activating", "start-pre")
        for cmd in cfg.start_pre:
            if not self.run_sync(cmd, cfg):
                return "exit-code (ExecStartPre)"
        if cfg.type == "oneshot":
            self.status("activating", "start")
            for cmd in cfg.start:
                if not self.run_sync(cmd, cfg):
                    return "exit-code"
            for cmd in cfg.start_post:
                self.run_sync(cmd, cfg)
            if not cfg.remain_after_exit:
                return "success"
            self.status("active", "exited")
            while not self.should_stop():
                time.sleep(policy.SUPERVISOR_FENCE_CHECK)
            self._stop_commands(cfg)
            return "success"
        try:
            self.main = self.spawn(cfg.start[0], cfg)
        except OSError as exc:
            self.note(f"cannot run {shlex.join(cfg.start[0].argv)}: {exc.strerror}")
            return "exec"
        self.status("active", "running")
        for cmd in cfg.start_post:
            self.run_sync(cmd, cfg)
        while self.main.poll() is None:
            if self.should_stop():
                self._stop_commands(cfg)
                self.kill_group(self.main, cfg.timeout_stop)
                return "success"
            time.sleep(policy.SUPERVISOR_FENCE_CHECK)
        code = self.main.returncode
        self.kill_group(self.main, 0)
        if code == 0 and cfg.remain_after_exit:
            self.status("active", "exited")
            while not self.should_stop():
                time.sleep(policy.SUPERVISOR_FENCE_CHECK)
            self._stop_commands(cfg)
            return "success"
        if code == 0:
            return "success"
        self.note(f"main process exited with status {code}")
        return "signal" if code < 0 else "exit-code"

    def _stop_commands(self, cfg: ServiceConfig) -> None:
        self.status("deactivating", "stop")
        if self.fenced:
            return  # no ExecStop when fenced: kill at once
        was_stopping = self.stopping
        self.stopping = False  # let ExecStop run to its end
        for cmd in cfg.stop:
            self.run_sync(Command(cmd.argv, True), cfg)
        self.stopping = was_stopping


def main(argv: list[str]) -> int:
    detach = argv[:1] == ["--detach"]
    if detach:
        argv = argv[1:]
    if len(argv) != 1:
        print("usage: python -m agent.units.supervisor [--detach] UNIT_DIR", file=sys.stderr)
        return 2
    unit_dir = Path(argv[0])
    if detach:
        # Fork away from the agent: the supervisor is nobody's child to reap, and outlives it.
        pid = os.fork()
        if pid:
            (unit_dir / "supervisor.pid").write_text(str(pid))
            os._exit(0)
        os.setsid()
    return Supervisor(unit_dir).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
