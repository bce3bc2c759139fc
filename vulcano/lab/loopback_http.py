"""HTTP GETs from chosen loopback source addresses: many clients (etcd members) on one host."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Long enough for any watch the tests hold; they are answered by a registration first.
WATCH_CLIENT_TIMEOUT = 60.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get_from(source: str, url: str, timeout: float = WATCH_CLIENT_TIMEOUT) -> Answer:
    """GET ``url`` over a connection bound to the loopback address ``source``."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=timeout, source_address=(source, 0)
    )
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def watch_url(base: str, directory_url: str, wait_index: int = 2) -> str:
    """The recursive watch etcd sends while it waits for more members."""
    path = urlsplit(directory_url).path
    return f"{base}{path}?recursive=true&wait=true&waitIndex={wait_index}"
