"""What the provisioning machine's user-data hands the container: its settings and state.

The installer's systemd unit (templates/cloud-config/provisioner.service.j2) passes the
cluster's name and planned size as environment variables and mounts the machine's
/var/lib/vulcano as the state directory. Both faces read them here: the panel at start,
the CLI later (issue 10 keeps the database, keys and known_hosts in the state dir).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from container.services.errors import SettingsError, StateDirError
from vulcano import cloudconfig, image

CLUSTER_NAME_VAR = "VULCANO_CLUSTER_NAME"
CLUSTER_SIZE_VAR = "VULCANO_CLUSTER_SIZE"
STATE_DIR_VAR = "VULCANO_STATE_DIR"
DEFAULT_STATE_DIR = Path(image.STATE_DIR)
STATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class ProvisioningSettings:
    """The cluster this provisioning machine is for, and where the container keeps state."""

    cluster_name: str
    cluster_size: int
    state_dir: Path

    @classmethod
    def checked(
        cls,
        cluster_name: str,
        cluster_size: str | int,
        state_dir: str | Path,
        *,
        names: tuple[str, str, str] = (CLUSTER_NAME_VAR, CLUSTER_SIZE_VAR, STATE_DIR_VAR),
    ) -> ProvisioningSettings:
        """Settings checked as the installer checks its answers; SettingsError otherwise.

        ``names`` are what an error calls the three settings (environment variables by
        default; a CLI passes its flags).
        """
        name_label, size_label, dir_label = names
        try:
            cloudconfig.check_cluster_name(cluster_name)
        except cloudconfig.InputError as exc:
            raise SettingsError(name_label, cluster_name, exc.message) from None
        try:
            size = cluster_size if isinstance(cluster_size, int) else int(cluster_size, 10)
            cloudconfig.check_size(size)
        except cloudconfig.InputError as exc:
            raise SettingsError(size_label, cluster_size, exc.message) from None
        except ValueError:
            raise SettingsError(size_label, cluster_size, "must be a whole number") from None
        path = Path(state_dir)
        if not path.is_absolute():
            raise SettingsError(dir_label, state_dir, "must be an absolute path")
        return cls(cluster_name, size, path)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ProvisioningSettings:
        """The settings the installer's unit passes in the environment."""
        return cls.checked(
            environ.get(CLUSTER_NAME_VAR, ""),
            environ.get(CLUSTER_SIZE_VAR, ""),
            environ.get(STATE_DIR_VAR) or DEFAULT_STATE_DIR,
        )


def prepare_state_dir(state_dir: Path) -> Path:
    """Make the state directory (0700) if it is missing and prove this user can write it.

    The proof is a file created and removed in it: permission bits alone do not say what
    a volume mounted from the host lets this uid do.
    """
    try:
        state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StateDirError(
            f"state directory {state_dir}: {exc.strerror or exc} (uid {os.getuid()} must be "
            f"able to write it; {STATE_DIR_VAR} or --state-dir chooses another)"
        ) from None
    return state_dir


def state_dir_writable(state_dir: Path) -> bool:
    """Whether this user can still create files in the state directory (for health checks)."""
    try:
        prepare_state_dir(state_dir)
    except StateDirError:
        return False
    return True
