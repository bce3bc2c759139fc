"""Backends from endpoint records, and the balancer's listen address: validated, pure.

Only an address that parses as an IP literal and a port in 1-65535 ever reach a rendered
configuration; a record that is anything else is skipped with a reason, so a hostile or
broken record cannot inject a directive.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from vulcano.endpoints import Endpoint, instance_matches
from vulcano.errors import VulcanoError

_LISTEN_RE = re.compile(r"(?:(?P<v4>[0-9.]*)|\[(?P<v6>[0-9A-Fa-f:.]+)\]):(?P<port>[0-9]{1,5})")
_SELECTOR_RE = re.compile(r"[A-Za-z0-9:_.\-]+(?:@|@[A-Za-z0-9:_.\-]+)?")
_PORT_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


class BalancerError(VulcanoError):
    """Root of the balancer's errors."""


class ListenError(BalancerError, ValueError):
    """A --listen, --port or --for value we cannot use; says which."""


@dataclass(frozen=True, order=True)
class Backend:
    """One address:port the balancer sends requests to (its identity: both, nothing else)."""

    address: str  # canonical IP literal
    port: int

    @property
    def is_v6(self) -> bool:
        return ":" in self.address

    def hostport(self) -> str:
        return f"[{self.address}]:{self.port}" if self.is_v6 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Listen:
    host: str  # "" for every address
    port: int

    def nginx(self) -> str:
        if not self.host:
            return str(self.port)
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def haproxy(self) -> str:
        if not self.host:
            return f":{self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str, where: str = "--listen") -> Listen:
    """``:80``, ``80``, ``127.0.0.1:8080`` or ``[::1]:8080``."""
    text = value
    if text.isdigit():
        text = ":" + text
    m = _LISTEN_RE.fullmatch(text)
    if m is None:
        raise ListenError(
            f"{where} wants [ADDRESS]:PORT such as :80 or 127.0.0.1:8080, got {value!r}"
        )
    port = int(m["port"])
    if not 1 <= port <= 65535:
        raise ListenError(f"{where} port {port} is outside 1-65535")
    host = m["v6"] if m["v6"] is not None else m["v4"]
    if host:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ListenError(f"{where} {host!r} is not an IP address") from None
    return Listen(host, port)


def check_port_selector(value: str | None, where: str = "--port") -> str | None:
    """``--port``: a declared port's name or number (default: an endpoint's first tcp port)."""
    if value is None or value == "":
        return None
    if value.isdigit() and 1 <= int(value) <= 65535:
        return str(int(value))
    if _PORT_NAME_RE.fullmatch(value):
        return value
    raise ListenError(f"{where} wants a port name or a number 1-65535, got {value!r}")


def check_selector(value: str, where: str = "--for") -> str:
    """``--for``: ``web@`` (every instance of web@.service) or one unit's name."""
    if not _SELECTOR_RE.fullmatch(value) or value.startswith("."):
        raise ListenError(
            f"{where} wants a unit name or a template prefix such as web@, got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Skipped:
    key: str
    reason: str


def backend_of(endpoint: Endpoint, port_selector: str | None) -> Backend:
    """The backend an endpoint stands for; ValueError saying why it cannot be one."""
    try:
        ip = ipaddress.ip_address(endpoint.address)
    except ValueError:
        raise ValueError(f"address {endpoint.address[:80]!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"address {ip} cannot be a backend")
    tcp = [p for p in endpoint.ports if p.protocol == "tcp"]
    if port_selector is None:
        chosen = tcp[:1]
    elif port_selector.isdigit():
        chosen = [p for p in tcp if p.port == int(port_selector)]
    else:
        chosen = [p for p in tcp if p.name == port_selector]
    if not chosen:
        want = "a tcp port" if port_selector is None else f"tcp port {port_selector!r}"
        raise ValueError(f"declares no {want}")
    port = chosen[0].port
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} is outside 1-65535")
    return Backend(str(ip), port)


def backends_from(
    records: Iterable[tuple[str, bytes]],
    endpoints_prefix: str,
    selector: str,
    port_selector: str | None = None,
) -> tuple[frozenset[Backend], tuple[Skipped, ...]]:
    """The backends of ``selector`` among ``endpoints/<unit>/<machine>`` records, and the
    records skipped (unreadable, or naming another unit than their key, or unusable)."""
    found: set[Backend] = set()
    skipped: list[Skipped] = []
    for key, raw in records:
        unit, _, machine = key[len(endpoints_prefix) :].partition("/")
        if not key.startswith(endpoints_prefix) or not instance_matches(selector, unit):
            continue
        try:
            endpoint = Endpoint.from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            skipped.append(Skipped(key, f"unreadable record ({type(exc).__name__})"))
            continue
        if endpoint.unit != unit or endpoint.machine_id != machine:
            skipped.append(Skipped(key, "record names another unit or machine than its key"))
            continue
        try:
            found.add(backend_of(endpoint, port_selector))
        except ValueError as exc:
            skipped.append(Skipped(key, str(exc)))
    return frozenset(found), tuple(sorted(skipped, key=lambda s: s.key))
