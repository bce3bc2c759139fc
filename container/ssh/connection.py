"""One authenticated SSH connection (paramiko's Transport), maybe through jump hosts.

The handshake offers only the host-key algorithms of the keys we expect for the host,
checks the key it shows (`hostkeys.HostKeyCheck`) before anything is sent, then logs in
with the identity files the ssh config names and the container's own key, in that
order; an ssh-agent is asked only when the settings allow it. A jump host is a
connection of its own, and the next hop runs over a direct-tcpip channel through it.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

import paramiko

from container import policy
from container.ssh.destinations import Endpoint
from container.ssh.errors import (
    AuthenticationFailed,
    HostKeyChanged,
    HostUnreachable,
    IdentityError,
)
from container.ssh.hostkeys import HostKey, algorithms_for
from container.ssh.keys import load_key_file
from container.ssh.settings import SSHSettings
from vulcano.closing import ClosesOnExit

log = logging.getLogger(__name__)
_READ = 32768


@dataclass(frozen=True)
class CommandResult:
    """What a command left: its exit status, and its output (stdout and stderr merged)."""

    exit_status: int
    output: bytes
    truncated: bool = False


class Connection(ClosesOnExit):
    """An open, authenticated connection to one endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        transport: paramiko.Transport,
        via: Connection | None = None,
        timeout: float = policy.SSH_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.timeout = timeout  # for opening a channel
        self._via = via

    def open_session(self) -> paramiko.Channel:
        try:
            return self.transport.open_session(timeout=self.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{self.endpoint.name}: cannot open a session: {exc}") from None

    def open_forward(self, host: str, port: int, origin: tuple[str, int]) -> paramiko.Channel:
        """A direct-tcpip channel to ``host:port`` as the remote end reaches it."""
        try:
            return self.transport.open_channel(
                "direct-tcpip", (host, port), origin, timeout=self.timeout
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(
                f"{self.endpoint.name}: cannot forward to {host}:{port}: {exc}"
            ) from None

    def run(
        self, command: str, limit: int = policy.EXEC_OUTPUT_LIMIT, timeout: float | None = None
    ) -> CommandResult:
        """Run ``command``; its exit status and merged output (the first ``limit`` bytes).

        ``timeout`` bounds the whole command (None: as long as it takes).
        """
        channel = self.open_session()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            channel.set_combine_stderr(True)
            channel.exec_command(command)
            chunks: list[bytes] = []
            size = 0
            truncated = False
            while True:
                if deadline is not None:
                    channel.settimeout(max(0.0, deadline - time.monotonic()))
                data = channel.recv(_READ)
                if not data:
                    break
                if size < limit:
                    chunks.append(data[: limit - size])
                truncated = truncated or size + len(data) > limit
                size += len(data)
            status = channel.recv_exit_status()
        except TimeoutError:
            raise HostUnreachable(
                f"{self.endpoint.name}: command did not end within {timeout:g}s"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{self.endpoint.name}: connection lost: {exc}") from None
        finally:
            channel.close()
        return CommandResult(status, b"".join(chunks), truncated)

    def close(self) -> None:
        self.transport.close()
        if self._via is not None:
            self._via.close()


def connect(endpoint: Endpoint, settings: SSHSettings) -> Connection:
    """Connect, check the host key and log in; HostUnreachable, HostKeyChanged or
    AuthenticationFailed say what failed, naming the endpoint (or the jump host)."""
    via = connect(endpoint.jump, settings) if endpoint.jump is not None else None
    try:
        sock = _open_socket(endpoint, settings, via)
        transport = paramiko.Transport(sock)
        try:
            _handshake(transport, endpoint, settings)
            _authenticate(transport, endpoint, settings)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(policy.SSH_KEEPALIVE_INTERVAL)
        return Connection(endpoint, transport, via, settings.timeout)
    except BaseException:
        if via is not None:
            via.close()
        raise


def _open_socket(
    endpoint: Endpoint, settings: SSHSettings, via: Connection | None
) -> socket.socket | paramiko.Channel:
    if via is not None:
        return via.open_forward(endpoint.host, endpoint.port, ("127.0.0.1", 0))
    try:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=settings.timeout)
    except TimeoutError:
        raise HostUnreachable(
            f"{endpoint.name}: {endpoint.address} did not answer within {settings.timeout:g}s"
        ) from None
    except OSError as exc:
        raise HostUnreachable(
            f"{endpoint.name}: cannot connect to {endpoint.address}: {exc.strerror or exc}"
        ) from None


def _handshake(transport: paramiko.Transport, endpoint: Endpoint, settings: SSHSettings) -> None:
    check = settings.host_key_check
    expected = check.expected(endpoint.host, endpoint.port, endpoint.pinned)
    algorithms = algorithms_for(expected)
    if algorithms:
        transport.get_security_options().key_types = algorithms
    transport.banner_timeout = settings.timeout
    transport.handshake_timeout = settings.timeout
    transport.auth_timeout = settings.timeout
    silent = (
        f"{endpoint.name}: {endpoint.address} did not complete an SSH handshake within "
        f"{settings.timeout:g}s (is it an SSH server?)"
    )
    try:
        transport.start_client(timeout=settings.timeout)
        if transport.is_active() and not transport.initial_kex_done:
            # start_client returns at its timeout even while the key exchange still waits
            transport.close()
            raise HostUnreachable(silent)
        key = transport.get_remote_server_key()
    except HostUnreachable:
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        cause = transport.get_exception() or exc  # the transport thread's own error
        if "banner" in str(cause):  # the same silence, seen by the transport thread first
            raise HostUnreachable(silent) from None
        if expected and "host key" in str(cause):
            raise HostKeyChanged(_no_known_key_type(endpoint, expected, settings)) from None
        raise HostUnreachable(
            f"{endpoint.name}: SSH handshake with {endpoint.address} failed: {cause}"
        ) from None
    presented = HostKey(key.get_name(), key.asbytes())
    check.verify(endpoint.name, endpoint.host, endpoint.port, presented, endpoint.pinned)


def _no_known_key_type(endpoint: Endpoint, expected: list[HostKey], settings: SSHSettings) -> str:
    known = ", ".join(f"{k.type} {k.fingerprint}" for k in expected)
    where = "its machine record" if endpoint.pinned else str(settings.known_hosts_path)
    accept = (
        "restart its vulcano-agent so it publishes its new host keys"
        if endpoint.pinned
        else f"`vulcano ssh-forget {endpoint.host}:{endpoint.port}` and connect again"
    )
    return (
        f"HOST KEY CHANGED for {endpoint.name} ({endpoint.address}): it offers no host key "
        f"of the types {where} has ({known}); refused. If it was rebuilt on purpose: {accept}."
    )


def _authenticate(transport: paramiko.Transport, endpoint: Endpoint, settings: SSHSettings) -> None:
    tried: list[str] = []
    for path in endpoint.identity_files:
        if not path.exists():
            log.debug("%s: IdentityFile %s does not exist", endpoint.name, path)
            continue
        try:
            key = load_key_file(path)
        except IdentityError as exc:
            log.warning("%s", exc)
            continue
        tried.append(str(path))
        if _offer(transport, endpoint, key):
            return
    tried.append(str(settings.state_dir / "id_ed25519"))
    if _offer(transport, endpoint, settings.identity):
        return
    if settings.allow_agent:
        for key in paramiko.Agent().get_keys():
            tried.append(f"agent key {key.fingerprint}")
            if _offer(transport, endpoint, key):
                return
    raise AuthenticationFailed(
        f"{endpoint.name}: {endpoint.user}@{endpoint.address} accepted none of our keys "
        f"(tried {', '.join(tried)})"
    )


def _offer(transport: paramiko.Transport, endpoint: Endpoint, key: paramiko.PKey) -> bool:
    try:
        transport.auth_publickey(endpoint.user, key)
    except paramiko.AuthenticationException:
        return False
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostUnreachable(f"{endpoint.name}: authentication broke off: {exc}") from None
    return transport.is_authenticated()
