"""Numbered messages over one TCP connection, each echoed back: proof nothing was lost.

    python -m vulcano.lab.stream serve PORT RESULT_FILE [TAG]     # the receiving end
    python -m vulcano.lab.stream send IP PORT RESULT_FILE [TAG]   # the sending end

The sender connects once and sends ``1\\n``, ``2\\n``, … one at a time, each only after
the previous one came back; the receiver checks that every message is the next number
on the connection and echoes it. Neither ever reconnects: a connection that breaks is
an error, written down, never retried. On SIGTERM the sender stops after the message in
flight came back and closes its side; the receiver then records that the stream ended.

Each end rewrites its RESULT_FILE (atomically, JSON) as it goes and when anything
happens: the receiver ``{connections, received, in_order, ended, error}``, the sender
``{sent, echoed, ended, error, longest_wait}`` (``longest_wait``: the longest a message
took to come back, in seconds, for the report). TAG is ignored: a word for finding the
process by its command line. Standard library only: it runs in a unit's sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

SEND_INTERVAL = 0.01  # between one echo and the next message
ECHO_TIMEOUT = 120.0  # a message not back by then breaks the stream (TCP retries first)
WRITE_EVERY = 20  # messages between two result writes


def _write(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def _lines(conn: socket.socket) -> Any:
    """The connection's lines (without the newline) until it ends."""
    pending = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines


def serve(port: int, result_file: Path) -> None:
    result: dict[str, Any] = {
        "connections": 0,
        "received": 0,
        "in_order": True,
        "ended": False,
        "error": "",
    }
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(8)
        _write(result_file, result)  # first once it listens: the sender may connect
        while True:
            conn, _ = listener.accept()
            result["connections"] += 1  # more than one: the stream was not kept
            _write(result_file, result)
            threading.Thread(target=_receive, args=(conn, result, result_file)).start()


def _receive(conn: socket.socket, result: dict[str, Any], result_file: Path) -> None:
    try:
        with conn:
            for line in _lines(conn):
                if int(line) != result["received"] + 1:
                    result["in_order"] = False
                    result["error"] = f"got {line!r} after {result['received']}"
                result["received"] += 1
                conn.sendall(line + b"\n")
                if result["received"] % WRITE_EVERY == 0:
                    _write(result_file, result)
        result["ended"] = True
    except (OSError, ValueError) as exc:
        result["error"] = result["error"] or f"{type(exc).__name__}: {exc}"
    _write(result_file, result)


def send(ip: str, port: int, result_file: Path) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result: dict[str, Any] = {
        "sent": 0,
        "echoed": 0,
        "ended": False,
        "error": "",
        "longest_wait": 0.0,
    }
    try:
        with socket.create_connection((ip, port), timeout=ECHO_TIMEOUT) as conn:
            lines = _lines(conn)
            while not stop.is_set():
                number = result["sent"] + 1
                began = time.monotonic()
                conn.sendall(b"%d\n" % number)
                result["sent"] = number
                echo = next(lines, None)
                if echo is None:
                    raise ConnectionError(f"the receiver closed the stream after {number - 1}")
                if int(echo) != number:
                    raise ValueError(f"echo {echo!r} for {number}")
                result["echoed"] = number
                result["longest_wait"] = max(result["longest_wait"], time.monotonic() - began)
                if number % WRITE_EVERY == 0:
                    _write(result_file, result)
                stop.wait(SEND_INTERVAL)
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                conn.recv(1)  # the receiver's close
        result["ended"] = True
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    _write(result_file, result)


def main(argv: list[str]) -> int:
    if len(argv) in (3, 4) and argv[0] == "serve":
        serve(int(argv[1]), Path(argv[2]))
        return 0
    if len(argv) in (4, 5) and argv[0] == "send":
        send(argv[1], int(argv[2]), Path(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
