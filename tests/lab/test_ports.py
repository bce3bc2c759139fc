"""The lab's ports: one held by a process is never given to another before it binds."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vulcano.lab import ports

ROOT = Path(__file__).resolve().parents[2]
# A range of our own, outside the lab's (ports.LOW-HIGH, where the run's other servers,
# a session's etcd or the emulator, may hold one for minutes) and below the kernel's
# ephemeral ports, so the test owns every port in it.
LOW, HIGH = 32100, 32109
assert ports.HIGH < LOW

HOLDER = f"""
import sys
from vulcano.lab import ports
ports.LOW, ports.HIGH = {LOW}, {HIGH}
given = set()
while len(given) < {HIGH - LOW + 1}:
    given.add(ports.reserve_port())
print(" ".join(map(str, sorted(given))), flush=True)
sys.stdin.read()  # hold them, bound by no one, until told to go
"""


def test_ports_another_process_holds_are_not_given_even_while_unbound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().split()
        assert held == [str(p) for p in range(LOW, HIGH + 1)]
        monkeypatch.setattr(ports, "LOW", LOW)
        monkeypatch.setattr(ports, "HIGH", HIGH)
        # Nothing is bound to them, yet none is free to pick: a child may bind them late.
        with pytest.raises(RuntimeError, match=f"no free port in {LOW}-{HIGH}"):
            ports.reserve_port()
    finally:
        holder.communicate("", timeout=30)
    # The holder is gone, and with it its locks: the ports are given again.
    assert LOW <= ports.reserve_port() <= HIGH


def test_a_listener_is_bound_before_its_port_is_known() -> None:
    with ports.listener() as server:
        port = server.getsockname()[1]
        assert ports.LOW <= port <= ports.HIGH
        with pytest.raises(OSError, match="Address already in use"):
            socket.create_server(("127.0.0.1", port))
