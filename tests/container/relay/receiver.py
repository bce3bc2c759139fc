"""A real heartbeat receiver on loopback: a tiny WSGI app under werkzeug's server thread.

It keeps what the installer keeps (each seq once, in order: 409 for a seq it has) and
answers as the test says: ``mode`` is "ok", "500", "401", "429" (with
Retry-After: 7), or "lose" (store the summary,
then drop the connection before answering, as a lost answer would).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


class Receiver:
    def __init__(self) -> None:
        self.mode = "ok"
        self.seqs: list[int] = []  # what it stored, in order
        self.requests = 0
        self.authorizations: set[str] = set()
        self.panels: list[dict[str, Any] | None] = []  # each stored summary's panel part
        self.url = ""
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self.requests += 1
            self.authorizations.add(environ.get("HTTP_AUTHORIZATION", ""))
            mode = self.mode
            if mode in {"500", "401", "429"}:
                headers = [("Content-Type", "text/plain")]
                if mode == "429":
                    headers.append(("Retry-After", "7"))
                start_response(f"{mode} No", headers)
                return [b"no\n"]
            sent = json.loads(body)
            seq = int(sent["seq"])
            if self.seqs and seq <= self.seqs[-1]:
                start_response("409 Conflict", [("Content-Type", "application/json")])
                return [json.dumps({"error": "replayed", "last_seq": self.seqs[-1]}).encode()]
            self.seqs.append(seq)
            self.panels.append(sent.get("panel"))
        if mode == "lose":
            conn: socket.socket = environ["werkzeug.socket"]
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            raise ConnectionAbortedError("answer lost on purpose")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"seq": seq, "stored": True}).encode()]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(5)
