"""The SSH settings of one `vulcano` run: the flags fleetctl has, and where state lives.

Defaults → the environment (VULCANO_*) → flags, as click layers them. The state
directory holds the container's key (``id_ed25519``) and, unless --known-hosts-file
names another, ``known_hosts``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import paramiko

from container import policy
from container.services.provisioning import DEFAULT_STATE_DIR
from container.ssh import keys
from container.ssh.destinations import DEFAULT_USER, load_config
from container.ssh.hostkeys import HostKeyCheck
from container.ssh.knownhosts import KnownHosts

KNOWN_HOSTS_NAME = "known_hosts"


@dataclass(frozen=True)
class SSHSettings:
    """How this run reaches hosts over SSH."""

    state_dir: Path = DEFAULT_STATE_DIR
    known_hosts_file: Path | None = None
    strict_host_key_checking: bool = True
    timeout: float = policy.SSH_TIMEOUT
    username: str | None = None  # --ssh-username; None: the ssh config's, else core
    config_file: Path | None = None
    allow_agent: bool = False
    default_user: str = DEFAULT_USER

    @property
    def known_hosts_path(self) -> Path:
        return self.known_hosts_file or self.state_dir / KNOWN_HOSTS_NAME

    @functools.cached_property
    def host_key_check(self) -> HostKeyCheck:
        return HostKeyCheck(KnownHosts(self.known_hosts_path), self.strict_host_key_checking)

    @functools.cached_property
    def ssh_config(self) -> paramiko.SSHConfig:
        return load_config(self.config_file)

    @functools.cached_property
    def identity(self) -> paramiko.PKey:
        """The container's own key (made on first use)."""
        return keys.load_identity(self.state_dir)
