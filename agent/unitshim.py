"""One unit's supervisor when there is no systemd: ``python -m agent.unitshim UNIT_DIR``.

The built-in runner starts one shim per running unit, in its own session, so units
survive an agent restart and are adopted by the next agent. The shim does what systemd
would for one service: ExecStartPre/ExecStart/ExecStartPost/ExecStop/ExecStopPost,
Environment=/EnvironmentFile=, WorkingDirectory=, Type=simple|oneshot with
RemainAfterExit=, Restart=/RestartSec=, TimeoutStopSec=, specifiers, output to the
unit's journal file. Each command runs in its own process group (killed as a group on
stop) and dies with the shim (PR_SET_PDEATHSIG), so stopping leaves nothing behind.

Fencing: the agent writes a deadline (CLOCK_MONOTONIC, shared by every process) into the
fence file while its machine lease is certainly held. If the agent dies or is cut off,
the deadline passes and the shim stops the unit by itself, before the lease can expire
and the engine can start the unit elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import policy
from vulcano import units

PR_SET_PDEATHSIG = 1
_PREFIX_CHARS = "-@:+!"


@dataclass
class Command:
    argv: list[str]
    ignore_failure: bool = False


@dataclass
class ServiceConfig:
    type: str = "simple"
    remain_after_exit: bool = False
    start_pre: list[Command] = field(default_factory=list)
    start: list[Command] = field(default_factory=list)
    start_post: list[Command] = field(default_factory=list)
    stop: list[Command] = field(default_factory=list)
    stop_post: list[Command] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    working_directory_optional: bool = False
    restart: str = "no"
    restart_sec: float = policy.UNIT_RESTART_SEC
    timeout_stop: float = policy.UNIT_STOP_TIMEOUT


def parse_seconds(value: str, default: float) -> float:
    """systemd time spans: "5", "5s", "500ms", "1min", "1min 30s", "infinity"."""
    v = value.strip().lower()
    if not v:
        return default
    if v == "infinity":
        return 365 * 86400.0
    total = 0.0
    units_ = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "": 1}
    for num, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", v):
        if unit not in units_:
            return default
        total += float(num) * units_[unit]
    return total


def _expand_env(argv: list[str], env: dict[str, str]) -> list[str]:
    """systemd's Exec variable rules: ${VAR} inline, $VAR alone splits, $$ is a '$'."""
    out: list[str] = []
    for word in argv:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue

        def sub(g: re.Match[str]) -> str:
            return "$" if g.group(0) == "$$" else env.get(g.group(1), "")

        out.append(re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, word))
    return out


def _command(value: str, name: str, ctx: dict[str, Any]) -> Command | None:
    ignore = False
    while value and value[0] in _PREFIX_CHARS:
        ignore = ignore or value[0] == "-"
        value = value[1:]
    value = units.expand_specifiers(
        value, name, hostname=ctx.get("hostname", ""), machine_id=ctx.get("machine_id", "")
    )
    try:
        argv = shlex.split(value)
    except ValueError:
        return None
    return Command(argv, ignore) if argv else None


def _env_file(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        k, v = line.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out[k.strip().removeprefix("export ").strip()] = v
    return out


def service_config(text: str, name: str, ctx: dict[str, Any]) -> ServiceConfig:
    unit = units.parse(text, name)
    cfg = ServiceConfig()
    cfg.type = (unit.value("Service", "Type") or "simple").strip()
    cfg.remain_after_exit = (
        units.parse_bool(unit.value("Service", "RemainAfterExit") or "no") or False
    )
    for attr, key in [
        ("start_pre", "ExecStartPre"),
        ("start", "ExecStart"),
        ("start_post", "ExecStartPost"),
        ("stop", "ExecStop"),
        ("stop_post", "ExecStopPost"),
    ]:
        cmds = [_command(v, name, ctx) for v in unit.values("Service", key)]
        setattr(cfg, attr, [c for c in cmds if c is not None])
    env: dict[str, str] = {}
    for path in unit.values("Service", "EnvironmentFile"):
        optional = path.startswith("-")
        path = units.expand_specifiers(path.lstrip("-"), name, ctx.get("hostname", ""))
        try:
            env.update(_env_file(path))
        except OSError:
            if not optional:
                raise
    for value in unit.values("Service", "Environment"):
        value = units.expand_specifiers(
            value, name, ctx.get("hostname", ""), ctx.get("machine_id", "")
        )
        for item in shlex.split(value):
            if "=" in item:
                k, v = item.split("=", 1)
                env[k] = v
    cfg.environment = env
    wd = unit.value("Service", "WorkingDirectory")
    if wd:
        cfg.working_directory_optional = wd.startswith("-")
        wd = units.expand_specifiers(wd.lstrip("-"), name, ctx.get("hostname", ""))
        cfg.working_directory = os.path.expanduser(wd)
    cfg.restart = (unit.value("Service", "Restart") or "no").strip()
    cfg.restart_sec = parse_seconds(unit.value("Service", "RestartSec") or "", cfg.restart_sec)
    cfg.timeout_stop = parse_seconds(
        unit.value("Service", "TimeoutStopSec") or unit.value("Service", "TimeoutSec") or "",
        cfg.timeout_stop,
    )
    return cfg


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Shim:
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
            "shim_pid": os.getpid(),
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
        argv = _expand_env(cmd.argv, env)
        netns = self.ctx.get("netns")
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
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
            preexec_fn=_die_with_parent,  # safe: the shim is single-threaded
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
            time.sleep(0.05)
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
            time.sleep(policy.SHIM_FENCE_CHECK)
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
        except (units.UnitFileError, OSError) as exc:
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
                time.sleep(min(policy.SHIM_FENCE_CHECK, cfg.restart_sec))
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
                time.sleep(policy.SHIM_FENCE_CHECK)
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
            time.sleep(policy.SHIM_FENCE_CHECK)
        code = self.main.returncode
        self.kill_group(self.main, 0)
        if code == 0 and cfg.remain_after_exit:
            self.status("active", "exited")
            while not self.should_stop():
                time.sleep(policy.SHIM_FENCE_CHECK)
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
        print("usage: python -m agent.unitshim [--detach] UNIT_DIR", file=sys.stderr)
        return 2
    unit_dir = Path(argv[0])
    if detach:
        # Fork away from the agent: the shim is nobody's child to reap, and outlives it.
        pid = os.fork()
        if pid:
            (unit_dir / "shim.pid").write_text(str(pid))
            os._exit(0)
        os.setsid()
    return Shim(unit_dir).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
