"""Where a connection goes: a destination as given, resolved through the ssh config.

An ssh config file (OpenSSH's format, read by paramiko.SSHConfig) may set each host's
HostName, User, Port, IdentityFile and ProxyJump; what was given explicitly (``user@``,
``:port``, --ssh-username) wins over the file, which wins over the defaults. A
ProxyJump chain is followed hop by hop, each hop resolved through the file as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from container import policy
from container.ssh.errors import DestinationError
from container.ssh.hostkeys import HostKey

DEFAULT_PORT = 22
# What our nodes' user-data authorizes the container's key for: core, as fleetctl's
# --ssh-username default; Flatcar's own user, and made (with sudo) on cloud-init nodes.
DEFAULT_USER = "core"
_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class Destination:
    """``[user@]host[:port]`` as the operator wrote it (unset parts are None)."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


def parse_destination(value: str, what: str = "destination") -> Destination:
    """``user@host[:port]``, ``host``, ``[v6addr]:port``; DestinationError when malformed."""
    text = value.strip()
    if not text:
        raise DestinationError(f"{what}: empty; expected [user@]host[:port]")
    user: str | None = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        if not _USER.fullmatch(user):
            raise DestinationError(f"{what} {value!r}: {user!r} is not a user name")
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise DestinationError(f"{what} {value!r}: expected [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    if not host or not _HOST.fullmatch(host):
        raise DestinationError(f"{what} {value!r}: {host!r} is not a host name or address")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise DestinationError(f"{what} {value!r}: port {port_text!r} is not 1-65535")
        port = int(port_text)
    return Destination(host, user, port)


@dataclass(frozen=True)
class Endpoint:
    """A resolved hop: the address to connect to, as whom, with which keys, through what."""

    name: str  # how messages name it: "machine 0123abcd... (10.0.0.5)" or the alias
    host: str
    port: int
    user: str
    identity_files: tuple[Path, ...] = ()
    jump: Endpoint | None = None
    pinned: tuple[HostKey, ...] = field(default=(), compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def load_config(path: Path | None) -> paramiko.SSHConfig:
    """The ssh config file at ``path`` (an empty config when None)."""
    if path is None:
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except OSError as exc:
        raise DestinationError(f"ssh config {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # paramiko raises bare ConfigParseError / ValueError
        raise DestinationError(f"ssh config {path}: {exc}") from None


def resolve(
    destination: Destination,
    config: paramiko.SSHConfig,
    *,
    username: str | None = None,
    default_user: str = DEFAULT_USER,
    name: str | None = None,
    pinned: Sequence[HostKey] = (),
    _depth: int = 0,
) -> Endpoint:
    """The endpoint for ``destination``: explicit parts, then the config, then defaults.

    ``username`` (--ssh-username) applies to the target only; jump hosts take theirs
    from their own ``user@`` or the config.
    """
    if _depth > policy.SSH_MAX_JUMPS:
        raise DestinationError(
            f"ProxyJump chain to {destination.host} is longer than {policy.SSH_MAX_JUMPS} "
            "hops (a loop in the ssh config?)"
        )
    found = config.lookup(destination.host)
    host = str(found.get("hostname", destination.host))
    user = destination.user or username or found.get("user") or default_user
    try:
        port = destination.port or int(found.get("port", DEFAULT_PORT))
    except ValueError:
        raise DestinationError(f"ssh config: Port of {destination.host} is not a number") from None
    identities = tuple(Path(p).expanduser() for p in found.get("identityfile", []))
    jump: Endpoint | None = None
    proxy = str(found.get("proxyjump", "")).strip()
    if proxy and proxy.lower() != "none":
        for hop in (h.strip() for h in proxy.split(",")):
            spec = parse_destination(hop, f"ProxyJump of {destination.host}")
            hop_endpoint = resolve(spec, config, default_user=default_user, _depth=_depth + 1)
            # a chain's later hop is reached through the earlier ones
            jump = _through(hop_endpoint, jump) if jump is not None else hop_endpoint
    label = name or str(destination)
    return Endpoint(label, host, port, str(user), identities, jump, tuple(pinned))


def _through(endpoint: Endpoint, first: Endpoint) -> Endpoint:
    """``endpoint`` reached through ``first`` (after ``endpoint``'s own jumps, if any)."""
    inner = first if endpoint.jump is None else _through(endpoint.jump, first)
    return Endpoint(
        endpoint.name,
        endpoint.host,
        endpoint.port,
        endpoint.user,
        endpoint.identity_files,
        inner,
        endpoint.pinned,
    )
