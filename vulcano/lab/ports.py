"""Loopback ports for long-lived test servers, outside the kernel's ephemeral range.

Asking the kernel for a port (binding port 0) gives one from the ephemeral range
(32768-60999 on Linux): by the time etcd binds it, an outgoing connection of any process
on the machine may have taken it ("bind: address already in use"). Ports below that
range are never handed out to outgoing connections, so a port found free here stays
free unless another test server picks the same one; a per-process set and random
choice make that unlikely.
"""

from __future__ import annotations

import random
import socket
import threading

LOW, HIGH = 20000, 32000
_given: set[int] = set()
_lock = threading.Lock()


def reserve_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host`, free now, below the ephemeral range, not given out before."""
    with _lock:
        for _ in range(200):
            port = random.randint(LOW, HIGH)
            if port in _given:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH} on {host}")
