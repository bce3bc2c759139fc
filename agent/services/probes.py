"""Running one health check once: an HTTP GET, a TCP connect, or a command.

Each probe ends within the check's timeout (a command is killed, with its process
group, when it overstays) and says what it saw in a short message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass

from agent import policy
from vulcano.endpoints import CheckSpec


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    output: str


def probe(spec: CheckSpec, address: str, netns: str | None = None) -> ProbeResult:
    """Run ``spec`` against an instance at ``address`` (its sandbox ``netns`` for exec)."""
    try:
        if spec.kind == "http":
            return _http(spec, address)
        if spec.kind == "tcp":
            return _tcp(spec, address)
        return _exec(spec, netns)
    except Exception as exc:  # a probe reports, it never raises
        return ProbeResult(False, f"{spec.kind} check error: {exc}")


def _http(spec: CheckSpec, address: str) -> ProbeResult:
    # Imported here: http.client (and the email package under it) is about 1 MiB of an
    # agent's memory, paid only by agents that run an HTTP check.
    import http.client

    host, port, path = spec.address(address)
    url = f"http://{_bracketed(host)}:{port}{path}"
    conn = http.client.HTTPConnection(host, port, timeout=spec.timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "vulcano-agent check"})
        response = conn.getresponse()
        response.read(policy.CHECK_HTTP_BODY_LIMIT)
        ok = 200 <= response.status < 400
        return ProbeResult(ok, f"HTTP GET {url}: {response.status} {response.reason}")
    except TimeoutError:
        return ProbeResult(False, f"HTTP GET {url}: timed out after {spec.timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"HTTP GET {url}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return ProbeResult(False, f"HTTP GET {url}: bad answer ({type(exc).__name__})")
    finally:
        conn.close()


def _tcp(spec: CheckSpec, address: str) -> ProbeResult:
    host, port, _ = spec.address(address)
    where = f"{_bracketed(host)}:{port}"
    try:
        with socket.create_connection((host, port), timeout=spec.timeout):
            return ProbeResult(True, f"TCP connect {where}: success")
    except TimeoutError:
        return ProbeResult(False, f"TCP connect {where}: timed out after {spec.timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"TCP connect {where}: {exc.strerror or exc}")


def _exec(spec: CheckSpec, netns: str | None) -> ProbeResult:
    argv = list(spec.target)
    if netns:
        # only the network namespace, as the unit itself runs (agent/units/supervisor.py):
        # `ip netns exec` would give the check a fresh /sys without the cgroup mounts that
        # `docker exec`/`podman exec` need
        argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, killed whole on timeout
    )
    try:
        out, _ = proc.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=policy.CHECK_KILL_WAIT)
        return ProbeResult(False, f"{spec.target[0]}: killed after {spec.timeout:g}s")
    tail = out.decode("utf-8", errors="replace").strip().splitlines()[-1:] if out else []
    said = f": {tail[0]}" if tail else ""
    return ProbeResult(proc.returncode == 0, f"{spec.target[0]} exited {proc.returncode}{said}")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
