"""A WSGI app served over real HTTP on 127.0.0.1, one thread per request.

For clients that are real programs (etcd's discovery client, browsers): they need a
socket, not a test client. Long-polls hold a thread each, so the server is threaded.
"""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Request lines carry secrets (tokens in paths): never log them."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class WsgiServer:
    """Serve `app` on a free loopback port from `__enter__` until `__exit__`."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self._server = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WsgiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
