"""The errors the SSH layer raises on purpose; each message names the host."""

from __future__ import annotations

from vulcano.errors import VulcanoError


class SSHError(VulcanoError):
    """Base of every SSH error of the container; its message names the host."""


class DestinationError(SSHError, ValueError):
    """A destination (``user@host[:port]``) or an ssh config value we cannot use."""


class HostUnreachable(SSHError, ConnectionError):
    """The host (or a jump host) did not answer, refused, or broke off the handshake."""


class HostKeyChanged(SSHError):
    """The host presented a key that is not the one we know for it: possibly an attack."""


class AuthenticationFailed(SSHError, PermissionError):
    """None of our keys was accepted for the user; says which key files were tried."""


class IdentityError(SSHError, OSError):
    """The container's own key cannot be made or read."""


class UnknownTarget(SSHError, LookupError):
    """No machine (or running unit) of the cluster goes by the name given."""
