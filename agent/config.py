"""The agent's configuration, layered: defaults → config file → VULCANO_* environment → flags.

The config file is TOML with the flags' names (dashes or underscores), e.g.::

    etcd-endpoints = "http://10.0.0.1:2379"
    public-ip = "10.0.0.5"
    metadata = { region = "eu", disk = "ssd" }   # or "region=eu,disk=ssd"
    ttl = 10
    sample-interval = 10
    cacert = "/etc/vulcano/tls/ca.pem"       # with https:// endpoints
    cert = "/etc/vulcano/tls/client.pem"
    key = "/etc/vulcano/tls/client-key.pem"
    crl-file = "/etc/etcd/tls/crl.pem"       # where the cluster's CRL is kept for etcd
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
from vulcano.etcd import EndpointError, TLSFileError, TLSFiles, parse_endpoints, tls_files
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace

DEFAULT_STATE_DIR = Path("/var/lib/vulcano")
DEFAULT_RUN_DIR = Path("/run/vulcano")
ENV_PREFIX = "VULCANO_"
# The etcd endpoints' variables, first wins: the agent's own name, then the one the
# `vulcano` CLI reads (VULCANO_ENDPOINT), so one environment serves both.
ENDPOINT_ENVVARS = (ENV_PREFIX + "ETCD_ENDPOINTS", ENV_PREFIX + "ENDPOINT")
_ENV_ALIASES = {"etcd_endpoints": ENDPOINT_ENVVARS[1:]}

# used with fullmatch: a '$' would let a trailing newline through
_MACHINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_METADATA_VALUE = re.compile(r"[^,=\s]{0,256}")
_SECONDS = re.compile(r"-?[0-9]{1,9}")
MAX_CONFIG_FILE_BYTES = 64 * 1024
MAX_METADATA_ENTRIES = 64

# name → parser; every field the file, the environment and the flags may set.
FIELDS = (
    "etcd_endpoints",
    "public_ip",
    "machine_id",
    "state_dir",
    "metadata",
    "ttl",
    "subnet_ttl",
    "sample_interval",
    "overlay",
    "prefix",
    "ssh_host_key_dir",
    "cacert",
    "cert",
    "key",
    "crl_file",
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
    sample_interval: int = policy.SAMPLE_INTERVAL  # seconds between heartbeat samples
    overlay: bool = True
    prefix: str = DEFAULT_PREFIX
    ssh_host_key_dir: Path = Path("/etc/ssh")  # its ssh_host_*_key.pub go in the record
    tls: TLSFiles | None = None  # for https:// endpoints: --cacert, --cert, --key
    # where the agent writes the cluster's CRL from etcd, for its member's etcd to read
    crl_file: Path | None = None

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
        items = []
        for k, v in value.items():
            if not isinstance(v, str | int) or isinstance(v, bool):
                raise ConfigError(f"{source}: metadata value of {k!r} must be a string")
            items.append((str(k), str(v)))
    elif not isinstance(value, str):
        raise ConfigError(f"{source}: must be a table or a 'key=value,...' string")
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
    if len(items) > MAX_METADATA_ENTRIES:
        raise ConfigError(f"{source}: more than {MAX_METADATA_ENTRIES} metadata entries")
    result: dict[str, str] = {}
    for k, v in items:
        if not _METADATA_KEY.fullmatch(k):
            raise ConfigError(f"{source}: metadata key {k!r} must be letters, digits, '_.-'")
        if not _METADATA_VALUE.fullmatch(v):
            raise ConfigError(
                f"{source}: metadata value {v!r} of {k!r} has ',', '=' or space, "
                "or is longer than 256 characters"
            )
        if k in result:
            raise ConfigError(f"{source}: metadata key {k!r} given twice")
        result[k] = v
    return result


def validate_public_ip(value: str, source: str = "--public-ip") -> str:
    try:
        ip = ipaddress.IPv4Address(value.strip(" \t"))
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not an IPv4 address") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise ConfigError(f"{source}: {value} cannot be a node's public IP")
    return str(ip)


def validate_machine_id(value: str, source: str = "--machine-id") -> str:
    if not _MACHINE_ID.fullmatch(value):
        raise ConfigError(
            f"{source}: {value!r} must be 1-64 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return value


def _int_in_range(value: Any, lo: int, hi: int, source: str) -> int:
    text = str(value).strip(" \t") if isinstance(value, str | int) else ""
    if isinstance(value, bool) or not _SECONDS.fullmatch(text):
        # ASCII digits only: int() would also take Arabic-Indic digits, "1_0" and a trailing newline
        raise ConfigError(f"{source}: {value!r} is not a whole number of seconds")
    number = int(text)
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
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    return parse_config_text(raw, f"config file {path}")


def parse_config_text(raw: bytes, where: str) -> dict[str, Any]:
    """A config file's bytes as fields (pure); ConfigError names the file and what is wrong.

    At most MAX_CONFIG_FILE_BYTES: with that bound, tomllib's recursion (one level per
    nested array or table) is caught here rather than escaping as RecursionError.
    """
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_CONFIG_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"{where}: unknown setting {key!r}")
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

    def text(name: str) -> str:
        """A field that must be text: a TOML table, list or date is refused, as are
        control characters (a trailing newline from `$(cat file)` among them)."""
        value = merged[name][0]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(f"{source(name)}: {value!r} is not a string")
        value = str(value)
        if not value.isprintable():
            raise ConfigError(f"{source(name)}: {value!r} contains control characters")
        return value

    endpoints = text("etcd_endpoints")
    try:
        parse_endpoints(endpoints)
    except EndpointError as exc:
        raise ConfigError(f"{source('etcd_endpoints')}: {exc}") from None

    def tls_field(name: str) -> tuple[str | None, str]:
        return (text(name), source(name)) if name in merged else (None, f"--{name}")

    (cacert, cacert_from), (cert, cert_from), (key, key_from) = map(
        tls_field, ("cacert", "cert", "key")
    )
    try:
        tls = tls_files(endpoints, cacert, cert, key, labels=(cacert_from, cert_from, key_from))
    except TLSFileError as exc:
        raise ConfigError(str(exc)) from None

    kwargs: dict[str, Any] = {
        "etcd_endpoints": endpoints,
        "tls": tls,
        "public_ip": validate_public_ip(text("public_ip"), source("public_ip")),
    }
    if "machine_id" in merged:
        kwargs["machine_id"] = validate_machine_id(text("machine_id"), source("machine_id"))
    if "state_dir" in merged:
        raw = text("state_dir")
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
    if "sample_interval" in merged:
        kwargs["sample_interval"] = _int_in_range(
            merged["sample_interval"][0],
            policy.SAMPLE_INTERVAL_MIN,
            policy.SAMPLE_INTERVAL_MAX,
            source("sample_interval"),
        )
    if "overlay" in merged:
        kwargs["overlay"] = _bool(merged["overlay"][0], source("overlay"))
    if "prefix" in merged:
        try:
            Keyspace(text("prefix"))
        except ValueError as exc:
            raise ConfigError(f"{source('prefix')}: {exc}") from None
        kwargs["prefix"] = text("prefix")
    if "crl_file" in merged:
        raw = text("crl_file")
        if tls is None or not raw.strip():
            why = "empty path" if raw.strip() == "" else "needs https:// etcd endpoints"
            raise ConfigError(f"{source('crl_file')}: {why}")
        kwargs["crl_file"] = Path(raw)
    if "ssh_host_key_dir" in merged:
        raw = text("ssh_host_key_dir")
        if not raw.strip():
            raise ConfigError(f"{source('ssh_host_key_dir')}: empty path")
        kwargs["ssh_host_key_dir"] = Path(raw)
    return AgentConfig(**kwargs)
