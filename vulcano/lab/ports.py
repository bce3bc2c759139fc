"""Loopback ports for long-lived test servers, outside the kernel's ephemeral range.

Asking the kernel for a port (binding port 0) gives one from the ephemeral range
(32768-60999 on Linux): by the time a child such as etcd binds it, an outgoing
connection of any process on the machine may have taken it ("bind: address already in
use"). Ports below that range are never handed out to outgoing connections; what could
still take a port between our pick and the server's bind is another test server on the
machine (this process or another test run) picking the same one. So a port given out
here is *held*: an exclusive lock on a file named after it, in a directory every lab
process shares, kept until this process ends (the kernel drops the lock then, even on a
crash). No other lab process is given a held port, so a child may bind it whenever it
starts, and a restarted server gets its own port back.

A server in this process does better still with ``listener()``: the socket is bound
and listening before the port is handed to anyone, so there is no gap at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import threading
from pathlib import Path

LOW, HIGH = 20000, 32000
# Shared by every lab process on the machine (tests, benchmarks, the demo).
LOCK_DIR = Path("/tmp/vulcano-lab-ports")
ATTEMPTS = 200
_held: dict[int, int] = {}  # port → the fd holding its lock, for this process's life
_lock = threading.Lock()


def _hold(port: int) -> bool:
    """Take the machine-wide lock on ``port``; False when another process holds it."""
    if not LOCK_DIR.is_dir():
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # every user's test runs share it, as /tmp
            LOCK_DIR.chmod(0o1777)
    # read-only is enough to lock, and opens another user's lock file too
    fd = os.open(LOCK_DIR / str(port), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    _held[port] = fd
    return True


def _bindable(host: str, port: int) -> bool:
    with socket.socket(_family(host)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reserve_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host``, free now and held for this process (see the module doc)."""
    with _lock:
        for _ in range(ATTEMPTS):
            port = random.randint(LOW, HIGH)
            if port in _held or not _hold(port):
                continue
            if _bindable(host, port):
                return port
            # someone outside the lab has it bound: keep it held, so it is not tried again
    raise RuntimeError(f"no free port in {LOW}-{HIGH} on {host}")


def listener(host: str = "127.0.0.1", backlog: int = 128) -> socket.socket:
    """A socket listening on a held port of ``host``: the port is bound before it is given."""
    last: OSError | None = None
    for _ in range(ATTEMPTS):
        port = reserve_port(host)
        try:
            return socket.create_server((host, port), family=_family(host), backlog=backlog)
        except OSError as exc:  # taken by a process outside the lab since the check
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
    raise RuntimeError(f"no port would bind on {host}: {last}")
