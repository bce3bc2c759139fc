"""The panel under gunicorn, started in-process (what `vulcano serve` runs).

gunicorn is the production WSGI server; the app is made once in the arbiter
(``preload_app``) from settings already checked, so a bad setting stops the command
before any worker starts instead of as a worker that fails to boot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from container import policy

# gunicorn's default access line, less the query string and the referrer.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'


@dataclass(frozen=True)
class ServerOptions:
    """Where and how the panel listens."""

    address: str
    port: int
    workers: int = 1
    threads: int = 4
    # HTTPS when both are given (`container.panel.tls`), else plain HTTP
    certfile: Path | None = None
    keyfile: Path | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None

    @property
    def bind(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def gunicorn_settings(options: ServerOptions) -> dict[str, Any]:
    """gunicorn's settings for the panel: logs on stdout/stderr (the container's log)."""
    tls: dict[str, Any] = {}
    if options.tls:
        tls = {"certfile": str(options.certfile), "keyfile": str(options.keyfile)}
    return {
        **tls,
        "bind": [options.bind],
        "workers": options.workers,
        "threads": options.threads,
        "worker_class": "gthread",
        "timeout": policy.PANEL_WORKER_TIMEOUT,
        "graceful_timeout": policy.PANEL_GRACEFUL_TIMEOUT,
        "keepalive": policy.PANEL_KEEPALIVE,
        "preload_app": True,
        "accesslog": "-",
        # the path without its query, and no referrer: a node's #include URL carries
        # the cluster's join token in its query, and no secret reaches a log
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        # gunicorn 23+ opens a control socket at one fixed path; the panel needs none.
        "control_socket_disable": True,
    }


class PanelServer(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn serving one Flask app, configured from a mapping, not argv."""

    def __init__(self, app: Flask, settings: Mapping[str, Any]) -> None:
        self._app = app
        self._settings = dict(settings)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            if key in self.cfg.settings:  # older gunicorns lack the newest settings
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app


def serve(app: Flask, options: ServerOptions) -> None:
    """Serve ``app`` until gunicorn is told to stop (SIGTERM, SIGINT); never returns early."""
    PanelServer(app, gunicorn_settings(options)).run()
