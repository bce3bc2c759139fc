"""The agent's configuration, layered: defaults → config file → VULCANO_* environment → flags.

The config file is TOML with the flags' names (dashes or underscores), e.g.::

    etcd-endpoints = "http://10.0.0.1:2379"
    public-ip = "10.0.0.5"
    metadata = { region = "eu", disk = "ssd" }   # or "region=eu,disk=ssd"
    ttl = 10
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import policy
from vulcano.errors import VulcanoError
from vulcano.etcd import EndpointError, parse_endpoints
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace

DEFAULT_STATE_DIR = Path("/var/lib/vulcano")
DEFAULT_RUN_DIR = Path("/run/vulcano")
ENV_PREFIX = "VULCANO_"
# The etcd endpoints' variables, first wins: the agent's own name, then the one the
# `vulcano` CLI reads (VULCANO_ENDPOINT), so one environment serves both.
ENDPOINT_ENVVARS = (ENV_PREFIX + "ETCD_ENDPOINTS", ENV_PREFIX + "ENDPOINT")
_ENV_ALIASES = {"etcd_endpoints": ENDPOINT_ENVVARS[1:]}

_MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_METADATA_VALUE = re.compile(r"^[^,=\s]*$")

# name → parser; every field the file, the environment and the flags may set.
FIELDS = (
    "etcd_endpoints",
    "public_ip",
    "machine_id",
    "state_dir",
    "metadata",
    "ttl",
    "subnet_ttl",
    "overlay",
    "prefix",
)


class ConfigError(VulcanoError, ValueError):
    """A configuration value we cannot use; names the field and where it came from."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything `vulcano-agent run` needs, validated."""

    etcd_endpoints: str
    public_ip: str
    machine_id: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    state_dir_given: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    ttl: int = policy.MACHINE_TTL
    subnet_ttl: int = policy.SUBNET_TTL
    overlay: bool = True
    prefix: str = DEFAULT_PREFIX

    @property
    def keyspace(self) -> Keyspace:
        return Keyspace(self.prefix)

    @property
    def subnet_env_path(self) -> Path:
        """Where subnet.env goes: the state dir when one was given, else /run/vulcano."""
        base = self.state_dir if self.state_dir_given else DEFAULT_RUN_DIR
        return base / "subnet.env"


def parse_metadata(value: str | Mapping[str, Any], source: str = "--metadata") -> dict[str, str]:
    """Parse "k=v,k2=v2" (or a mapping from the config file) into a dict."""
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    else:
        items = []
        for raw in value.split(","):
            part = raw.strip()
            if not part:
                continue
            if "=" not in part:
                raise ConfigError(f"{source}: {part!r} is not key=value")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    result: dict[str, str] = {}
    for k, v in items:
        if not _METADATA_KEY.match(k):
            raise ConfigError(f"{source}: metadata key {k!r} must be letters, digits, '_.-'")
        if not _METADATA_VALUE.match(v):
            raise ConfigError(f"{source}: metadata value {v!r} of {k!r} has ',', '=' or space")
        if k in result:
            raise ConfigError(f"{source}: metadata key {k!r} given twice")
        result[k] = v
    return result


def validate_public_ip(value: str, source: str = "--public-ip") -> str:
    try:
        ip = ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not an IPv4 address") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise ConfigError(f"{source}: {value} cannot be a node's public IP")
    return str(ip)


def validate_machine_id(value: str, source: str = "--machine-id") -> str:
    if not _MACHINE_ID.match(value):
        raise ConfigError(
            f"{source}: {value!r} must be 1-64 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return value


def _int_in_range(value: Any, lo: int, hi: int, source: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a whole number of seconds") from None
    if not lo <= number <= hi:
        raise ConfigError(f"{source}: {number} must be between {lo} and {hi} seconds")
    return number


def _bool(value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{source}: {value!r} is not true or false")


def read_config_file(path: Path) -> dict[str, Any]:
    """The fields a TOML config file sets, with their names normalised."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        result[name] = value
    return result


def env_names(name: str) -> tuple[str, ...]:
    """The variables that may set field ``name``, the first one winning."""
    return (ENV_PREFIX + name.upper(), *_ENV_ALIASES.get(name, ()))


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields set by VULCANO_* variables (VULCANO_ETCD_ENDPOINTS, VULCANO_TTL, ...)."""
    found = {}
    for name in FIELDS:
        for var in env_names(name):
            if environ.get(var, "") != "":
                found[name] = environ[var]
                break
    return found


def resolve(
    flags: Mapping[str, Any],
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Layer defaults, file, environment and flags (later wins) and validate the result."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        layers.append((f"config file {config_file}", read_config_file(config_file)))
    layers.append(("environment", read_environment(environ)))
    layers.append(("flag", {k: v for k, v in flags.items() if v is not None and k in FIELDS}))

    merged: dict[str, tuple[Any, str]] = {}
    for origin, values in layers:
        for name, value in values.items():
            merged[name] = (value, origin)

    def source(name: str) -> str:
        origin = merged[name][1]
        if origin == "flag":
            return "--" + name.replace("_", "-")
        if origin == "environment":
            return next(v for v in env_names(name) if environ.get(v, "") != "")
        return f"{origin}: {name.replace('_', '-')}"

    if "etcd_endpoints" not in merged:
        raise ConfigError("no etcd endpoints: give --etcd-endpoints or VULCANO_ETCD_ENDPOINTS")
    if "public_ip" not in merged:
        raise ConfigError("no public IP: give --public-ip or VULCANO_PUBLIC_IP")
    endpoints = str(merged["etcd_endpoints"][0])
    try:
        parse_endpoints(endpoints)
    except EndpointError as exc:
        raise ConfigError(f"{source('etcd_endpoints')}: {exc}") from None

    kwargs: dict[str, Any] = {
        "etcd_endpoints": endpoints,
        "public_ip": validate_public_ip(str(merged["public_ip"][0]), source("public_ip")),
    }
    if "machine_id" in merged:
        kwargs["machine_id"] = validate_machine_id(
            str(merged["machine_id"][0]), source("machine_id")
        )
    if "state_dir" in merged:
        raw = str(merged["state_dir"][0])
        if not raw.strip():
            raise ConfigError(f"{source('state_dir')}: empty path")
        kwargs["state_dir"] = Path(raw)
        kwargs["state_dir_given"] = True
    if "metadata" in merged:
        kwargs["metadata"] = parse_metadata(merged["metadata"][0], source("metadata"))
    if "ttl" in merged:
        kwargs["ttl"] = _int_in_range(
            merged["ttl"][0], policy.MACHINE_TTL_MIN, policy.MACHINE_TTL_MAX, source("ttl")
        )
    if "subnet_ttl" in merged:
        kwargs["subnet_ttl"] = _int_in_range(
            merged["subnet_ttl"][0],
            policy.SUBNET_TTL_MIN,
            10 * policy.SUBNET_TTL,
            source("subnet_ttl"),
        )
    if "overlay" in merged:
        kwargs["overlay"] = _bool(merged["overlay"][0], source("overlay"))
    if "prefix" in merged:
        try:
            Keyspace(str(merged["prefix"][0]))
        except ValueError as exc:
            raise ConfigError(f"{source('prefix')}: {exc}") from None
        kwargs["prefix"] = str(merged["prefix"][0])
    return AgentConfig(**kwargs)
