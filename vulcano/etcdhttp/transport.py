"""One etcd member's HTTP/1.1 connections (plain, or TLS with a client certificate), and
what a failed request means: the member is out of reach (try another), it is slow, or
etcd answered with an error of its own."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Any

from vulcano.errors import VulcanoError
from vulcano.etcdtls import TLSFileError, TLSFiles

# plain HTTP sent to a TLS listener: Go's TLS server answers so, then closes
_PLAIN_TO_TLS = "client sent an http request to an https server"
# etcd's error codes (gRPC's) that mean "this member cannot serve now": another may
_UNAVAILABLE, _DEADLINE_EXCEEDED = 14, 4
# what a TLS connection etcd closes before answering is taken for (etcdtls says more)
CLOSED_AFTER_HANDSHAKE = "closed after the TLS handshake"
_IDLE_PER_MEMBER = 4  # kept-alive connections per member, for the agent's few threads


class MemberUnreachable(ConnectionError):
    """A member did not answer (connection, TLS, timeout, no leader); ``details`` says how."""

    def __init__(self, details: str, *, timeout: bool = False, tls: bool = False) -> None:
        super().__init__(details)
        self.details = details
        self.timeout = timeout
        self.tls = tls


class EtcdRequestError(VulcanoError):
    """etcd refused a request (its own error, code and message as the gateway gives them)."""

    def __init__(self, code: int, message: str, status: int) -> None:
        super().__init__(f"etcd: {message} (code {code}, HTTP {status})")
        self.code = code
        self.message = message
        self.status = status


def tls_context(tls: TLSFiles) -> ssl.SSLContext:
    """A client context trusting only ``tls.cacert``, presenting ``tls.cert`` if given."""
    try:
        context = ssl.create_default_context(cafile=str(tls.cacert))
        if tls.cert is not None:
            context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError(f"TLS files {tls.cacert}, {tls.cert}, {tls.key}: {exc}") from None
    return context


class _Connection(http.client.HTTPConnection):
    """An HTTP connection; over TLS when given a context, checked against ``server_name``."""

    def __init__(
        self, host: str, port: int, timeout: float, context: ssl.SSLContext | None, name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.context = context
        self.server_name = name

    def connect(self) -> None:
        super().connect()
        if self.context is None:
            return
        try:
            self.sock = self.context.wrap_socket(self.sock, server_hostname=self.server_name)
        except ssl.SSLEOFError as exc:
            # closed before the server's half of the handshake: it does not speak TLS here
            raise ssl.SSLError(
                f"handshake read failed: the member closed the connection ({exc})"
            ) from None


class Member:
    """Where one member is reached, and its idle kept-alive connections."""

    def __init__(self, scheme: str, host: str, port: int, server_name: str | None = None) -> None:
        self.url = f"{scheme}://{host}:{port}"
        self.host, self.port = host, port
        self.server_name = server_name or host
        self.context: ssl.SSLContext | None = None
        self.last_failed = 0.0
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def use_tls(self, context: ssl.SSLContext) -> None:
        """New connections from here on use ``context``; idle ones are closed."""
        with self._lock:
            self.context = context
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def open(self, timeout: float) -> _Connection:
        return _Connection(self.host, self.port, timeout, self.context, self.server_name)

    def request(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST ``body`` to ``path``; etcd's answer, or MemberUnreachable / EtcdRequestError."""
        data = json.dumps(body).encode()
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                return self._exchange(conn, path, data, timeout)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()  # closed while idle (etcd restarted, cut): once more, anew
        return self._exchange(self.open(timeout), path, data, timeout)

    def _exchange(
        self, conn: _Connection, path: str, data: bytes, timeout: float
    ) -> dict[str, Any]:
        reused = conn.sock is not None
        try:
            if reused:
                conn.sock.settimeout(timeout)
            else:
                conn.timeout = timeout
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if reused:
                raise
            raise MemberUnreachable(
                f"{self.url}: the connection was closed before etcd answered"
                + (f" ({CLOSED_AFTER_HANDSHAKE})" if self._tls() else ""),
                tls=self._tls(),
            ) from None
        except Exception as exc:
            conn.close()
            raise describe(exc, self.url) from None
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                if conn.context is self.context and len(self._idle) < _IDLE_PER_MEMBER:
                    self._idle.append(conn)
                    conn = None  # type: ignore[assignment]
            if conn is not None:
                conn.close()
        return answer(response.status, raw, self.url)

    def _tls(self) -> bool:
        # etcd closes a TLS connection whose certificate its CRL revokes right after the
        # handshake: for a client on TLS, a close before any answer is a refusal
        return self.context is not None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def describe(exc: BaseException, url: str) -> MemberUnreachable:
    """A failed exchange with a member as MemberUnreachable, saying what failed."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return MemberUnreachable(f"{url}: TLS handshake failed: {exc}", tls=True)
    if isinstance(exc, TimeoutError | socket.timeout):
        return MemberUnreachable(f"{url}: no answer in time", timeout=True)
    if isinstance(exc, OSError | http.client.HTTPException):
        return MemberUnreachable(f"{url}: {type(exc).__name__}: {exc}")
    return MemberUnreachable(f"{url}: {exc!r}")


def answer(status: int, raw: bytes, url: str) -> dict[str, Any]:
    """etcd's JSON answer; its errors raised (a member unable to serve as unreachable)."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        if _PLAIN_TO_TLS in text.lower():
            raise MemberUnreachable(f"{url}: {text}") from None
        hint = " (is etcd's JSON gateway on? enable-grpc-gateway: true)" if status == 404 else ""
        raise MemberUnreachable(f"{url}: HTTP {status}, not etcd's JSON: {text!r}{hint}") from None
    if status == 200 and isinstance(body, dict) and "error" not in body:
        return body
    if not isinstance(body, dict):
        raise MemberUnreachable(f"{url}: HTTP {status}: {body!r}")
    code = int(body.get("code", 2))
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    if code == _UNAVAILABLE:
        raise MemberUnreachable(f"{url}: {message}")
    if code == _DEADLINE_EXCEEDED:
        raise MemberUnreachable(f"{url}: {message}", timeout=True)
    raise EtcdRequestError(code, message, status)
