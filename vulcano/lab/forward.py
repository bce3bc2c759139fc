"""Reaching into a test network namespace from the root namespace, without an address there.

The lab's underlay (bridge, etcd) lives in a namespace of its own, so no test-network
address is ever configured in the root namespace. The test process and the programs it
runs there (the `vulcano` CLI, benchmarks) still need etcd: `PortForward` listens on a
loopback port of the root namespace and carries every connection to an address inside
the namespace, over a socket created in that namespace (`entered`, per thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from vulcano.lab.ports import listener

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def entered(netns: Path) -> Iterator[None]:
    """Run the block in network namespace ``netns`` (this thread only).

    Sockets made inside stay in that namespace after the block; the thread returns to
    the namespace it was in.
    """
    with open("/proc/thread-self/ns/net") as home, open(netns) as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


class PortForward:
    """127.0.0.1:<port> in the root namespace → ``host:port`` inside ``netns``."""

    def __init__(self, netns: Path, host: str, port: int, listen_port: int | None = None) -> None:
        """``listen_port``: the loopback port to listen on (default: a free one)."""
        self.netns = netns
        self.target = (host, port)
        if listen_port:
            self._listener = socket.create_server(("127.0.0.1", listen_port), backlog=128)
        else:
            self._listener = listener("127.0.0.1", backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="lab-forward", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if self._closed.is_set():
            client.close()
            return
        try:
            with entered(self.netns):
                upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()  # the client sees a reset, as it would from a dead server
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.update((client, upstream))
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._sockets.difference_update((client, upstream))
        client.close()
        upstream.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        """Copy until ``source`` ends, then end ``sink``'s sending side."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:  # a reset either way: cut both directions, or the other pump hangs
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop listening and cut every carried connection."""
        self._closed.set()
        # Wake the accept thread before the descriptor is closed: a thread still in
        # accept() on a closed (and reused) descriptor would take another listener's
        # connections.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
            self._sockets.clear()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
