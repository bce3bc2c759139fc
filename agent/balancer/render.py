"""nginx and HAProxy configurations from a backend set, and HAProxy's slot plan. Pure.

Backends are rendered sorted, so equal sets give identical text and an unchanged set is
never reloaded. Only validated values (`backends.Backend`, `backends.Listen`, paths the
balancer chose) reach the text.

HAProxy gets a fixed number of server slots, named as ``server-template srv 1-N`` would
name them, each rendered as its own ``server`` line: a filled slot with its address, a
free one ``disabled``. Membership changes that fit are made through the runtime API
(`set server be/srvN addr … port …`, `state ready|maint`) with no reload, and the file
is rewritten to match, so a later reload or restart starts from the same state (with
one server-template line every slot would come back with one address). Only when the
slots run out is a bigger set of slots rendered and reloaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent import policy
from agent.balancer.backends import Backend, Listen

HAPROXY_BACKEND = "be"
SLOT_PREFIX = "srv"
# A free slot's address: never used, the slot is disabled (maint) until filled.
FREE_SLOT_ADDRESS = "127.0.0.1:1"
NGINX_STATUS_PATH = "/vulcano-balancer/config"


@dataclass(frozen=True)
class NginxPaths:
    """Where the nginx the balancer owns keeps its pid, temp files and status socket."""

    pid: Path
    temp: Path
    status_socket: Path


@dataclass(frozen=True)
class HaproxyPaths:
    stats_socket: Path


def _sorted(backends: Iterable[Backend]) -> list[Backend]:
    return sorted(set(backends))


def config_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_nginx(
    backends: Iterable[Backend], listen: Listen, paths: NginxPaths, extra: str = ""
) -> str:
    """The whole nginx.conf; no backend: a server that answers 503.

    It also listens on a unix socket of its own that answers with the config's id, so
    the balancer knows when a reload has reached the workers. ``extra`` goes into the
    ``http`` block as is (a test hook: the real balancer never passes untrusted text).
    """
    text = _nginx(_sorted(backends), listen, paths, extra, "")
    return _nginx(_sorted(backends), listen, paths, extra, config_id(text))


def nginx_config_id(text: str) -> str | None:
    """The id a rendered nginx.conf answers on its status socket."""
    marker = f'location = {NGINX_STATUS_PATH} {{ return 200 "'
    at = text.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    return text[start : text.index('"', start)]


def _nginx(backends: list[Backend], listen: Listen, paths: NginxPaths, extra: str, cid: str) -> str:
    t = paths.temp
    lines = [
        "# written by vulcano-agent balancer; changes here are overwritten",
        "worker_processes 1;",
        f"pid {paths.pid};",
        "error_log stderr warn;",
        f"worker_shutdown_timeout {policy.BALANCER_DRAIN_SECONDS:.0f}s;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        f"    client_body_temp_path {t}/client_body;",
        f"    proxy_temp_path {t}/proxy;",
        f"    fastcgi_temp_path {t}/fastcgi;",
        f"    uwsgi_temp_path {t}/uwsgi;",
        f"    scgi_temp_path {t}/scgi;",
        f"    proxy_connect_timeout {policy.BALANCER_UPSTREAM_CONNECT_TIMEOUT:.0f}s;",
        f"    proxy_read_timeout {policy.BALANCER_UPSTREAM_TIMEOUT:.0f}s;",
        f"    proxy_send_timeout {policy.BALANCER_UPSTREAM_TIMEOUT:.0f}s;",
        "    proxy_next_upstream error timeout http_502 http_503;",
        f"    proxy_next_upstream_tries {policy.BALANCER_UPSTREAM_TRIES};",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    ]
    if backends:
        lines.append("    upstream vulcano_backends {")
        lines += [f"        server {b.hostport()} max_fails=1 fail_timeout=2s;" for b in backends]
        lines += [
            "    }",
            "    server {",
            f"        listen {listen.nginx()};",
            "        location / { proxy_pass http://vulcano_backends; }",
            "    }",
        ]
    else:
        lines += [
            "    server {",
            f"        listen {listen.nginx()};",
            '        location / { return 503 "no backend is available\\n"; }',
            "    }",
        ]
    lines += [
        "    server {",
        f"        listen unix:{paths.status_socket};",
        f'        location = {NGINX_STATUS_PATH} {{ return 200 "{cid}"; }}',
        "    }",
    ]
    if extra:
        lines.append("    " + extra)
    lines += ["}", ""]
    return "\n".join(lines)


# --- HAProxy --------------------------------------------------------------------------

Slots = tuple[Backend | None, ...]


def slot_count(backends: int) -> int:
    """How many slots a fresh render has for ``backends``: room to grow without a reload."""
    return max(policy.HAPROXY_MIN_SLOTS, backends * policy.HAPROXY_SLOT_FACTOR)


def fresh_slots(backends: Iterable[Backend], size: int | None = None) -> Slots:
    ordered = _sorted(backends)
    n = slot_count(len(ordered)) if size is None else size
    return (*ordered, *([None] * (n - len(ordered))))


def slot_name(index: int) -> str:
    return f"{SLOT_PREFIX}{index + 1}"


@dataclass(frozen=True)
class SlotPlan:
    slots: Slots
    changes: tuple[tuple[int, Backend | None], ...]  # (slot index, new occupant or None)
    fits: bool  # False: the target needs more slots (a fresh render and a reload)


def plan_slots(current: Slots, target: Iterable[Backend]) -> SlotPlan:
    """Keep every target backend in its slot, free the others', fill free slots in order."""
    wanted = set(target)
    slots = [b if b in wanted else None for b in current]
    placed = {b for b in slots if b is not None}
    new = _sorted(wanted - placed)
    free = [i for i, b in enumerate(slots) if b is None]
    if len(new) > len(free):
        return SlotPlan(fresh_slots(wanted), (), fits=False)
    for i, b in zip(free, new, strict=False):
        slots[i] = b
    changes = tuple((i, b) for i, (a, b) in enumerate(zip(current, slots, strict=True)) if a != b)
    return SlotPlan(tuple(slots), changes, fits=True)


def runtime_commands(changes: Iterable[tuple[int, Backend | None]]) -> list[str]:
    """The runtime API commands that make the live slots match ``changes``."""
    out: list[str] = []
    for i, b in changes:
        server = f"{HAPROXY_BACKEND}/{slot_name(i)}"
        if b is None:
            out.append(f"set server {server} state maint")
        else:
            out.append(f"set server {server} addr {b.address} port {b.port}")
            out.append(f"set server {server} state ready")
    return out


def render_haproxy(slots: Slots, listen: Listen, paths: HaproxyPaths, extra: str = "") -> str:
    """The whole haproxy.cfg for these slots; all free: HAProxy itself answers 503."""
    t = policy
    lines = [
        "# written by vulcano-agent balancer; changes here are overwritten",
        "global",
        f"    stats socket {paths.stats_socket} mode 600 level admin expose-fd listeners",
        f"    stats timeout {t.BALANCER_SOCKET_TIMEOUT:.0f}s",
        f"    hard-stop-after {t.BALANCER_DRAIN_SECONDS:.0f}s",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    option redispatch 1",
        f"    retries {t.BALANCER_UPSTREAM_TRIES - 1}",
        "    retry-on conn-failure empty-response response-timeout",
        f"    timeout connect {t.BALANCER_UPSTREAM_CONNECT_TIMEOUT * 1000:.0f}ms",
        f"    timeout client {t.BALANCER_UPSTREAM_TIMEOUT:.0f}s",
        f"    timeout server {t.BALANCER_UPSTREAM_TIMEOUT:.0f}s",
        f"    timeout http-request {t.BALANCER_UPSTREAM_TIMEOUT:.0f}s",
        "frontend vulcano",
        f"    bind {listen.haproxy()}",
        f"    default_backend {HAPROXY_BACKEND}",
        f"backend {HAPROXY_BACKEND}",
        "    balance roundrobin",
    ]
    for i, b in enumerate(slots):
        if b is None:
            lines.append(f"    server {slot_name(i)} {FREE_SLOT_ADDRESS} disabled")
        else:
            lines.append(f"    server {slot_name(i)} {b.hostport()}")
    if extra:
        lines.append("    " + extra)
    lines.append("")
    return "\n".join(lines)
