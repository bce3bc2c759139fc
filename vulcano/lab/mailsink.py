"""A real SMTP server on loopback that keeps every message (aiosmtpd), and a page of them.

The tests hand its port to the installer as ``VULCANO_SMTP_PORT`` and read
``sink.messages``; the demo also serves ``sink.page`` so the user sees the alerts arrive::

    with smtp_sink() as sink, sink.web(port=8025) as url:
        ...
"""

from __future__ import annotations

import contextlib
import email.policy
import html
import json
import threading
from collections.abc import Iterable, Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from werkzeug.serving import WSGIRequestHandler, make_server

from vulcano.lab.ports import reserve_port


class MailSink:
    """Keeps every message it is handed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    @property
    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def summary(self) -> list[dict[str, str]]:
        with self._lock:
            kept = list(self.messages)
        return [
            {
                "from": str(m["From"]),
                "to": str(m["To"]),
                "subject": str(m["Subject"]),
                "date": str(m["Date"]),
                "body": _text(m),
            }
            for m in kept
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The page: every message, newest first (``?format=json`` for a machine)."""
        rows = list(reversed(self.summary()))
        if "format=json" in environ.get("QUERY_STRING", ""):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(rows).encode()]
        items = "".join(
            f"<li><b>{html.escape(r['subject'])}</b> <small>{html.escape(r['date'])} "
            f"to {html.escape(r['to'])}</small><pre>{html.escape(r['body'])}</pre></li>"
            for r in rows
        )
        page = (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
            "<title>Vulcano demo mail</title><h1>Mail sent by the installer</h1>"
            f"<p>{len(rows)} message(s); this page refreshes every 5 s. Kept in memory "
            "only, for as long as the demo runs.</p>"
            f"<ol>{items or '<li>nothing yet</li>'}</ol>"
        )
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    @contextlib.contextmanager
    def web(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve the page on ``host:port`` (0: any free port); yields its URL."""
        server = make_server(host, port, self, threaded=True, request_handler=_Quiet)
        thread = threading.Thread(target=server.serve_forever, name="mail-page", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_port}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


class _Quiet(WSGIRequestHandler):
    """No access log line per page view (the demo's progress goes to the same terminal)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _text(message: Message) -> str:
    part = next((p for p in message.walk() if p.get_content_type() == "text/plain"), message)
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return str(part.get_payload())


@contextlib.contextmanager
def smtp_sink(port: int | None = None) -> Iterator[MailSink]:
    sink = MailSink()
    sink.port = port or reserve_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
