"""The discovery service's errors: each knows its HTTP status and its etcd v2 error code.

Every answer of the discovery API that is not 2xx is the v2 error JSON built from one of
these: `{errorCode, message, cause, index}`.
"""

from __future__ import annotations

from vulcano.errors import VulcanoError


class DiscoveryError(VulcanoError):
    """Base of the discovery service's errors; each knows its HTTP status and v2 code."""

    status = 400
    error_code = 209
    message = "Invalid field"

    def __init__(self, cause: str, index: int | None = None) -> None:
        super().__init__(f"{self.message}: {cause}")
        self.cause = cause
        self.index = index


class KeyNotFound(DiscoveryError, LookupError):
    """No such token, or no such key under it."""

    status = 404
    error_code = 100
    message = "Key not found"


class NodeExists(DiscoveryError):
    """A create (`prevExist=false`) of a key that is already there."""

    status = 412
    error_code = 105
    message = "Key already exists"


class InvalidField(DiscoveryError, ValueError):
    """A query parameter, key name or method the discovery service does not accept."""


class ValueRequired(DiscoveryError, ValueError):
    """A registration without a `value` field."""

    error_code = 200
    message = "Value is Required in POST form"


class IndexNaN(DiscoveryError, ValueError):
    """A `waitIndex` that is not an unsigned integer."""

    error_code = 203
    message = "The given index in POST form is not a number"


class InvalidForm(DiscoveryError, ValueError):
    """A registration body that is not a form, or whose value is not `name=peerURL,...`."""

    error_code = 210
    message = "Invalid POST form"


class BodyTooLarge(InvalidForm):
    """A registration body longer than any etcd member sends."""

    status = 413


class InternalError(DiscoveryError):
    """Datastore (or this code) failed; etcd retries a GET that gets a 5xx."""

    status = 500
    error_code = 300
    message = "Raft Internal Error"


class Unauthorized(DiscoveryError):
    """A credential that names no live install."""

    status = 401
    error_code = 110
    message = "The request requires user authentication"


class MethodNotAllowed(DiscoveryError):
    """A method other than GET, HEAD and PUT on a discovery key."""

    status = 405


class TokenFull(DiscoveryError):
    """A registration past the most a token takes (its size, and the slack for races)."""

    status = 403


class BadSize(InvalidField):
    """A cluster size that is not an integer from MIN_SIZE to MAX_SIZE."""
