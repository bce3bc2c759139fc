"""Every error the service layer raises on purpose, for each face to show its own way.

The CLI turns them into messages and exit codes (`container.cli.context`); the panel
will turn them into HTTP statuses. All are `VulcanoError`s whose message is for the
operator, and each also inherits the builtin it resembles.
"""

from __future__ import annotations

from vulcano.errors import UnitFileError, VulcanoError
from vulcano.etcd import EtcdUnavailable
from vulcano.registry import RegistryError, UnitContentConflict, UnitNotFound

__all__ = [
    "CheckConflict",
    "CheckNotFound",
    "ClusterAddressError",
    "ClusterExists",
    "ClusterInputError",
    "ClusterNotFound",
    "ClusterUnavailable",
    "InstallerError",
    "JoinTokenError",
    "MachineNotFound",
    "NodeNotReady",
    "RegistryError",
    "ServiceError",
    "SettingsError",
    "StateDirError",
    "UnitContentConflict",
    "UnitContentMissing",
    "UnitFailed",
    "UnitFileError",
    "UnitNotFound",
    "UnitSourceError",
    "UnitUnplaceable",
    "WaitTimedOut",
]


class ServiceError(VulcanoError):
    """Base of the errors the container's service layer raises itself."""


class ClusterAddressError(ServiceError, ValueError):
    """Endpoints or a key prefix that cannot name a cluster; says which part."""


class ClusterNotFound(ServiceError, LookupError):
    """No cluster of that name in the container's database (or not reachable yet)."""


class ClusterUnavailable(ServiceError, EtcdUnavailable):
    """The cluster's etcd refused or did not answer a request; carries etcd's words."""


class MachineNotFound(ServiceError, LookupError):
    """No machine of that id (or leading part of one) in the cluster."""


class UnitSourceError(ServiceError, ValueError):
    """A unit argument we cannot use: an unreadable file, not UTF-8, not a unit name."""


class UnitContentMissing(ServiceError, LookupError):
    """A submitted unit whose content is not in the registry any more."""


class UnitFailed(ServiceError):
    """A unit failed while we waited for it; says how, and the runner's reason."""


class UnitUnplaceable(ServiceError):
    """A unit no machine can take, as the engine says: waiting would not help."""


class WaitTimedOut(ServiceError, TimeoutError):
    """Units did not reach their desired state in time (the cluster keeps trying)."""


class SettingsError(ServiceError, ValueError):
    """A provisioning setting we cannot use; ``setting`` names it (a variable or a flag)."""

    def __init__(self, setting: str, value: object, message: str) -> None:
        super().__init__(f"{setting}={str(value)!r}: {message}")
        self.setting = setting
        self.message = message


class StateDirError(ServiceError, OSError):
    """The state directory is missing, not a directory, or not writable by this user."""


class InstallerError(ServiceError, ConnectionError):
    """The hosted installer could not be reached, or refused; names it."""


class ClusterExists(ServiceError, ValueError):
    """A cluster of that name is in the database already."""


class ClusterInputError(ServiceError, ValueError):
    """A cluster's field we cannot accept; ``field`` names it (the CLI's flag)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JoinTokenError(ServiceError, PermissionError):
    """A join token that is wrong, revoked or expired: nothing is served."""


class EnrolmentError(ServiceError, PermissionError):
    """A node's certificate request at boot that is not signed; ``status`` is the HTTP
    answer (403: the token; 400: the request), the message says why."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class NodeNotReady(ServiceError):
    """A node whose user-data needs something the cluster does not have yet."""


class CheckNotFound(ServiceError, LookupError):
    """A unit has no check of that name (among those added at runtime)."""


class CheckConflict(ServiceError, ValueError):
    """A check that cannot be added or removed as asked: its name is taken, or the unit
    file declares it (change the file for that)."""
