"""Real alert destinations on loopback: an SMTP sink (aiosmtpd, vulcano/lab/mailsink.py) and a
webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from vulcano.lab.mailsink import MailSink, smtp_sink

__all__ = ["MailSink", "Webhook", "smtp_sink", "webhook_receiver"]


class Webhook:
    """Keeps every JSON body POSTed to it; answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.url = ""
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self.bodies.append(json.loads(body))
        start_response(f"{self.status} Answer", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    @property
    def changes(self) -> list[str]:
        return [f"{b['alert']['change']} {b['alert']['subject']}" for b in self.bodies]


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook()
    server = make_server("127.0.0.1", 0, hook, threaded=True)
    hook.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        thread.join(5)
