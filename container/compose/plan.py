"""What one Compose service becomes, before it is written as a unit: plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vulcano.endpoints import PortSpec


@dataclass(frozen=True)
class Context:
    """What converting a service needs beyond the service itself."""

    project: str  # names the units and volumes: <project>-<service>, <project>_<volume>
    base_dir: Path  # relative paths (bind mounts, env_file) start here
    services: frozenset[str]
    volumes: dict[str, str]  # declared top-level volume -> the runtime's volume name
    files: dict[str, str] = field(default_factory=dict)  # env_file path -> its text
    variables: dict[str, str] = field(default_factory=dict)  # environment: NAME takes these


@dataclass(frozen=True)
class HealthCheck:
    """A Compose healthcheck: its command runs inside the container (runtime exec)."""

    command: tuple[str, ...]
    interval: float
    timeout: float
    failing: int


@dataclass
class ServicePlan:
    name: str
    image: str = ""
    run_options: list[str] = field(default_factory=list)  # before the image
    entrypoint: list[str] | None = None  # None: the image's
    command: list[str] | None = None  # None: the image's
    environment: dict[str, str] = field(default_factory=dict)
    service_lines: list[tuple[str, str]] = field(default_factory=list)  # [Service]
    fleet_lines: list[tuple[str, str]] = field(default_factory=list)  # [X-Fleet]
    ports: list[PortSpec] = field(default_factory=list)
    health: HealthCheck | None = None
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    depends_keys: dict[str, str] = field(default_factory=dict)  # service -> its key's path
    named_volumes: set[str] = field(default_factory=set)
    sandbox: bool = True  # its own address on the overlay (network_mode host: False)
    network: str = "host"  # the runtime's --network: the unit's own namespace
    network_of: str | None = None  # network_mode service:NAME
    replicas: int = 1
    global_: bool = False
    container_name: str | None = None
    stop_seconds: float | None = None
