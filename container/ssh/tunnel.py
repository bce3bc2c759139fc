"""`--tunnel user@host[:port]`: local loopback ports carried to remote addresses over SSH.

As fleetctl's tunnel: every connection to a forwarded local port becomes a direct-tcpip
channel of one SSH connection, opened to the address as the tunnel host sees it (etcd's
client URL, say), so a client that only knows ``127.0.0.1:<port>`` talks to it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

import paramiko

from container import policy
from container.ssh.connection import Connection, connect
from container.ssh.destinations import parse_destination, resolve
from container.ssh.errors import SSHError
from container.ssh.settings import SSHSettings
from vulcano.closing import ClosesOnExit

log = logging.getLogger(__name__)
_READ = 65536


class Tunnel(ClosesOnExit):
    """Loopback ports forwarded through one connection; closing it closes them all."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[socket.socket] = []
        self._open: set[socket.socket | paramiko.Channel] = set()
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        return self.connection.endpoint.name

    def forward(self, host: str, port: int) -> int:
        """A new loopback port whose connections reach ``host:port`` from the tunnel host."""
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        local = int(listener.getsockname()[1])
        self._listeners.append(listener)
        self._spawn(self._accept, listener, host, port)
        log.debug("tunnel %s: 127.0.0.1:%d -> %s:%d", self.name, local, host, port)
        return local

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="ssh-tunnel", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]  # a long-lived
            self._threads.append(thread)  # tunnel carries many connections in turn
        thread.start()

    def _accept(self, listener: socket.socket, host: str, port: int) -> None:
        while not self._closed.is_set():
            try:
                client, origin = listener.accept()
            except OSError:
                return
            self._spawn(self._carry, client, origin, host, port)

    def _carry(self, client: socket.socket, origin: tuple[str, int], host: str, port: int) -> None:
        try:
            channel = self.connection.open_forward(host, port, origin[:2])
        except SSHError as exc:
            log.warning("tunnel %s: %s", self.name, exc)
            client.close()  # the client sees the connection end, as from a dead server
            return
        with self._lock:
            if self._closed.is_set():
                channel.close()
                client.close()
                return
            self._open.update((client, channel))
        back = threading.Thread(target=_pump, args=(channel, client), daemon=True)
        back.start()
        _pump(client, channel)
        back.join()
        with self._lock:
            self._open.difference_update((client, channel))
        channel.close()
        client.close()

    def close(self) -> None:
        """Stop listening, cut every carried connection and close the SSH connection."""
        self._closed.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            carried = list(self._open)
            self._open.clear()
            threads = list(self._threads)
        for end in carried:
            with contextlib.suppress(OSError, EOFError):
                end.close()
        self.connection.close()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(policy.TUNNEL_CLOSE_TIMEOUT)


def _pump(source: socket.socket | paramiko.Channel, sink: socket.socket | paramiko.Channel) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side."""
    try:
        while data := source.recv(_READ):
            sink.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        for end in (source, sink):
            with contextlib.suppress(OSError, EOFError):
                end.close()
        return
    with contextlib.suppress(OSError, EOFError):
        if isinstance(sink, paramiko.Channel):
            sink.shutdown_write()
        else:
            sink.shutdown(socket.SHUT_WR)


def open_tunnel(spec: str, settings: SSHSettings) -> Tunnel:
    """Connect to the tunnel host ``user@host[:port]`` (resolved through the ssh config)."""
    destination = parse_destination(spec, "--tunnel")
    endpoint = resolve(
        destination,
        settings.ssh_config,
        username=settings.username,
        default_user=settings.default_user,
        name=f"tunnel host {destination}",
    )
    return Tunnel(connect(endpoint, settings))
