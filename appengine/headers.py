"""What every response says about itself, and the hosts the installer answers for.

Pages get a Content-Security-Policy that fits them (no inline script or style, nothing
from elsewhere, never framed), HSTS over HTTPS, and a Referrer-Policy that keeps tokens
on this origin. The permalink is a document, not a page: a sandboxing CSP. A request for
a host not on the trusted list is refused before any view runs, so no absolute URL the
installer builds (permalinks, discovery URLs) ever names a host a client made up.
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCUMENT_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
# Off App Engine (tests, the demo, the bench) the installer serves loopback only.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_DOCUMENT_ENDPOINTS = {"installs.cloud_config"}
_PRIVATE_ENDPOINTS = {"installs.show", "installs.cloud_config", "status.show"}


def trusted_hosts_from_environment(on_app_engine: bool) -> list[str] | None:
    """`VULCANO_TRUSTED_HOSTS` (comma-separated); the loopback names off App Engine."""
    raw = os.environ.get("VULCANO_TRUSTED_HOSTS", "")
    hosts = [h.strip().lower() for h in raw.split(",") if h.strip()]
    if hosts:
        return hosts
    return None if on_app_engine else list(LOCAL_HOSTS)


def _hostname(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_trusted(host: str, trusted: list[str]) -> bool:
    """True when ``host`` (with or without a port) is on the list; ".x" means x's subdomains."""
    name = _hostname(host)
    return any(
        name == entry or (entry.startswith(".") and name.endswith(entry)) for entry in trusted
    )


def init_app(app: Flask) -> None:
    """Check the Host of every request and give every response its headers."""

    @app.before_request
    def _check_host() -> None:
        trusted = app.config["TRUSTED_HOSTS_LIST"]
        if not is_trusted(request.host, trusted):
            abort(400, f"host: {request.host[:100]} is not a host this installer serves")

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.endpoint in _DOCUMENT_ENDPOINTS:
            headers["Content-Security-Policy"] = DOCUMENT_CSP
        else:
            headers.setdefault("Content-Security-Policy", PAGE_CSP)
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint in _PRIVATE_ENDPOINTS:
            headers["Cache-Control"] = "private, no-store"
        return response
