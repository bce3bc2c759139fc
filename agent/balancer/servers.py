"""The nginx or HAProxy a balancer starts and owns: check, start, reload, runtime, stop.

Each runs in the foreground as the balancer's child, in its process group, from files
in the balancer's state directory (never a system-wide config), and is stopped by its
pid. A start or reload counts only once the server proves it: nginx answers the new
config's id on its status socket; HAProxy's stats socket answers from a new worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent import policy
from agent.balancer.backends import BalancerError
from agent.balancer.render import HaproxyPaths, NginxPaths, nginx_config_id

log = logging.getLogger(__name__)

KINDS = ("nginx", "haproxy")
_CHECK_OUTPUT_LINES = 6
# How HAProxy's runtime API answers a `set server` it carried out (else: empty).
_ACCEPTED = ("IP changed", "port changed", "no need to change")


class ConfigRejected(BalancerError, ValueError):
    """The server's own check refused a staged file; the message is its output."""


class ServerFailed(BalancerError, RuntimeError):
    """The server did not start, reload, or take a runtime command; says how."""


class Server(Protocol):
    kind: str
    live: Path
    staged: Path

    @property
    def pid(self) -> int | None: ...
    def check(self, path: Path) -> None: ...
    def start(self, text: str) -> None: ...
    def reload(self, text: str) -> None: ...
    def alive(self) -> bool: ...
    def stop(self) -> None: ...


def _unix_request(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(policy.BALANCER_SOCKET_TIMEOUT)
        s.connect(str(path))
        s.sendall(payload)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _run_check(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=policy.BALANCER_CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigRejected(
            f"{what} did not answer within {policy.BALANCER_CHECK_TIMEOUT:.0f}s"
        ) from None
    except OSError as exc:
        raise ConfigRejected(f"{what} could not run: {exc.strerror}") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        detail = "; ".join(lines[-_CHECK_OUTPUT_LINES:]) or f"exit status {done.returncode}"
        raise ConfigRejected(f"{what} refused the configuration: {detail}")


class _Child:
    """A foreground server process, stopped by its pid."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, argv: list[str]) -> None:
        # In the balancer's process group (a unit runner stopping the group stops the
        # server too), and told to end when the balancer dies without stopping it:
        # util-linux's setpriv sets PR_SET_PDEATHSIG and execs the server (a preexec_fn
        # doing the same can deadlock or abort in the child of a threaded program).
        setpriv = shutil.which("setpriv")
        wrapped = [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv
        try:
            self.proc = subprocess.Popen(
                wrapped, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise ServerFailed(f"cannot run {argv[0]}: {exc.strerror}") from None

    def children(self) -> list[int]:
        """The server's child processes (its workers, old ones still draining too)."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def wait_old_workers(self, what: str, workers: int = 1) -> None:
        """Wait (at most BALANCER_OLD_WORKERS_WAIT) until only the new workers are left.

        Until then an old worker may still take a new connection with the old
        configuration; a worker held up by a long request only delays the log line.
        """
        deadline = time.monotonic() + policy.BALANCER_OLD_WORKERS_WAIT
        while len(self.children()) > workers:
            if time.monotonic() >= deadline:
                log.info("balancer: %s: old workers still draining", what)
                return
            time.sleep(policy.BALANCER_CONFIRM_POLL)

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``done()`` until true; ServerFailed if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerFailed(f"{what}: the server exited (status {code})")
            try:
                if done():
                    return
            except OSError as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ServerFailed(f"{what}: not confirmed within {timeout:.0f}s ({last})")
            time.sleep(policy.BALANCER_CONFIRM_POLL)

    def stop(self, graceful: int) -> None:
        """``graceful`` signal; after the drain time, SIGKILL to its workers and itself."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(graceful)
            try:
                proc.wait(policy.BALANCER_DRAIN_SECONDS + 2)
            except subprocess.TimeoutExpired:
                log.warning("balancer: server %d did not stop; killing it", proc.pid)
        if proc.poll() is None:
            for pid in [*self.children(), proc.pid]:  # its workers, then itself
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(policy.BALANCER_DRAIN_SECONDS)


class NginxServer:
    """``nginx -c <state>/nginx.conf -g 'daemon off;'``; reload: SIGHUP to its master."""

    kind = "nginx"

    def __init__(self, state_dir: Path, binary: str = "nginx") -> None:
        self.dir = state_dir
        self.binary = binary
        self.live = state_dir / "nginx.conf"
        self.staged = state_dir / "nginx.conf.staged"
        self.paths = NginxPaths(
            pid=state_dir / "nginx.pid",
            temp=state_dir / "nginx-temp",
            status_socket=state_dir / "nginx-status.sock",
        )
        self._child = _Child()

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def _argv(self, conf: Path) -> list[str]:
        # -p and -e: nothing read or written outside the state dir, not even before the
        # config's own error_log is read
        return [self.binary, "-p", f"{self.dir}/", "-e", "stderr", "-c", str(conf)]

    def check(self, path: Path) -> None:
        self.paths.temp.mkdir(parents=True, exist_ok=True)
        _run_check([*self._argv(path), "-t", "-q"], "nginx -t")

    def answered_id(self) -> str:
        raw = _unix_request(
            self.paths.status_socket,
            b"GET /vulcano-balancer/config HTTP/1.0\r\nHost: balancer\r\n\r\n",
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        return body.decode(errors="replace") if b" 200 " in head.split(b"\r\n")[0] else ""

    def _serving(self, text: str) -> Callable[[], bool]:
        want = nginx_config_id(text)
        return lambda: self.answered_id() == want

    def start(self, text: str) -> None:
        self.paths.temp.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.paths.status_socket.unlink()  # left by a server killed before
        self._child.spawn([*self._argv(self.live), "-g", "daemon off;"])
        self._child.wait_for(self._serving(text), "starting nginx", policy.BALANCER_START_TIMEOUT)

    def reload(self, text: str) -> None:
        self._child.signal(signal.SIGHUP)  # what `nginx -s reload` sends its master
        self._child.wait_for(self._serving(text), "reloading nginx", policy.BALANCER_RELOAD_TIMEOUT)
        self._child.wait_old_workers("reloading nginx")

    def alive(self) -> bool:
        return self._child.alive()

    def stop(self) -> None:
        self._child.stop(signal.SIGQUIT)  # graceful: workers finish their requests


class HaproxyServer:
    """``haproxy -W -db -f <state>/haproxy.cfg`` (master-worker); reload: SIGUSR2 to the
    master; membership changes through the stats socket."""

    kind = "haproxy"

    def __init__(self, state_dir: Path, binary: str = "haproxy") -> None:
        self.dir = state_dir
        self.binary = binary
        self.live = state_dir / "haproxy.cfg"
        self.staged = state_dir / "haproxy.cfg.staged"
        self.paths = HaproxyPaths(stats_socket=state_dir / "haproxy.sock")
        self._child = _Child()

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def check(self, path: Path) -> None:
        _run_check([self.binary, "-c", "-f", str(path)], "haproxy -c")

    def command(self, line: str) -> str:
        """One runtime API command; its answer."""
        return _unix_request(self.paths.stats_socket, line.encode() + b"\n").decode(
            errors="replace"
        )

    def worker_pid(self) -> int:
        for line in self.command("show info").splitlines():
            key, _, value = line.partition(":")
            if key == "Pid":
                return int(value.strip())
        return 0

    def start(self, text: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.paths.stats_socket.unlink()
        self._child.spawn([self.binary, "-W", "-db", "-f", str(self.live)])
        self._child.wait_for(
            lambda: self.worker_pid() > 0, "starting haproxy", policy.BALANCER_START_TIMEOUT
        )

    def reload(self, text: str) -> None:
        try:
            old = self.worker_pid()
        except OSError:
            old = 0
        self._child.signal(signal.SIGUSR2)  # the master re-reads the file, new worker
        self._child.wait_for(
            lambda: self.worker_pid() not in (0, old),
            "reloading haproxy",
            policy.BALANCER_RELOAD_TIMEOUT,
        )
        self._child.wait_old_workers("reloading haproxy")

    def runtime(self, commands: list[str]) -> None:
        """Send each command; ServerFailed on the first one HAProxy does not accept."""
        for line in commands:
            try:
                answer = self.command(line).strip()
            except OSError as exc:
                raise ServerFailed(f"haproxy runtime API: {line!r}: {exc}") from None
            if answer and not answer.startswith(_ACCEPTED):
                raise ServerFailed(f"haproxy runtime API: {line!r}: {answer[:200]}")

    def alive(self) -> bool:
        return self._child.alive()

    def stop(self) -> None:
        self._child.stop(signal.SIGUSR1)  # soft stop, bounded by hard-stop-after


def server_for(kind: str, state_dir: Path) -> NginxServer | HaproxyServer:
    if kind == "nginx":
        return NginxServer(state_dir)
    if kind == "haproxy":
        return HaproxyServer(state_dir)
    raise ValueError(f"--kind wants one of {', '.join(KINDS)}, got {kind!r}")
