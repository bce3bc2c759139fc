"""The etcd v2 discovery protocol, as etcd 3.4's --discovery speaks it.

`GET /new?size=N` answers a discovery URL, `<host>/discovery/<token>`. etcd keeps the
whole URL path as its discovery directory, so every key below is that path: the
directory itself, `_config/size`, and one key per member named after its member id.
Every answer that is not 2xx is the v2 error JSON `{errorCode, message, cause, index}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request, url_for
from google.cloud import ndb
from werkzeug.exceptions import HTTPException

from appengine import csrf, limits, policy
from appengine.discovery_errors import (
    BodyTooLarge,
    DiscoveryError,
    InternalError,
    InvalidField,
    KeyNotFound,
    MethodNotAllowed,
    NodeExists,
    Unauthorized,
)
from appengine.discovery_models import (
    CONFIG_INDEX,
    DiscoveryMember,
    DiscoveryToken,
    is_member_id,
    parse_peers,
    parse_size,
    register,
)
from appengine.discovery_request import BOOL_ARGS, MAX_BODY, bool_arg, form_value, wait_index
from appengine.discovery_watch import member_registered, next_member, watch_slots
from appengine.limits import LimitReached
from appengine.models import Install
from appengine.redact import redact

log = logging.getLogger(__name__)

# Nested in appengine.discovery.bp; its error handlers answer v2 JSON for its views only.
api = Blueprint("api", __name__)

PREFIX = "/discovery"
CONFIG = "_config"
SIZE = "size"
# Every method a client might try gets the v2 error JSON; only these do something.
_ALLOWED = ("GET", "HEAD", "PUT")
_ROUTED = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE"]


# --- responses ------------------------------------------------------------------------


def _json(body: dict[str, Any], status: int, index: int) -> Response:
    text = json.dumps(body, separators=(",", ":")) + "\n"
    response = Response(text, status=status, mimetype="application/json")
    response.headers["X-Etcd-Index"] = str(index)
    return response


def _error(exc: DiscoveryError, index: int) -> Response:
    # A cause names the key asked for, as etcd's does, but with its token redacted: etcd
    # logs the error it got (the node's journal), and its client never reads the cause.
    body = {
        "errorCode": exc.error_code,
        "message": exc.message,
        "cause": redact(exc.cause),
        "index": exc.index if exc.index is not None else index,
    }
    response = _json(body, exc.status, index)
    if isinstance(exc, MethodNotAllowed):
        response.headers["Allow"] = "GET" if request.path == "/new" else ", ".join(_ALLOWED)
    return response


@api.errorhandler(DiscoveryError)
def _discovery_error(exc: DiscoveryError) -> Response:
    return _error(exc, 0)


class _Refused(DiscoveryError):
    """A bound (limits.LimitReached) in the v2 error JSON; status and cause from the bound."""

    error_code = 300
    message = "Limit reached"


@api.errorhandler(LimitReached)
def _limit_reached(exc: LimitReached) -> Response:
    error = _Refused(exc.message)
    error.status = exc.status
    response = _error(error, 0)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    error: DiscoveryError
    if exc.code == 404:
        error = KeyNotFound(request.path)
    elif exc.code == 405:
        error = MethodNotAllowed(f"method {request.method} is not allowed")
    elif exc.code == 413:
        error = BodyTooLarge(f"body is longer than {MAX_BODY} bytes")
    elif exc.code is not None and exc.code < 500:
        error = InvalidField(exc.description or exc.name)
    else:
        error = InternalError("the discovery service failed; try again")
    return _error(error, 0)


@api.app_errorhandler(405)
def _unrouted_method(exc: HTTPException) -> Response | HTTPException:
    # A method no route lists (PROPFIND, say) is refused by routing, before any blueprint
    # is chosen: answer it in v2 JSON under our paths, and leave every other path alone.
    if request.path == "/new" or request.path.startswith(request.script_root + PREFIX):
        return _error(MethodNotAllowed(f"method {request.method} is not allowed"), 0)
    return exc


@api.errorhandler(Exception)
def _internal_error(exc: Exception) -> Response:
    # etcd retries a 5xx GET with backoff; the error JSON keeps its client talking.
    log.error("discovery request failed: %s", type(exc).__name__, exc_info=exc)
    return _error(InternalError("the discovery service failed; try again"), 0)


# --- /new -----------------------------------------------------------------------------


def discovery_url(token: str) -> str:
    """The URL etcd's --discovery takes for this token, on the host that was asked."""
    return url_for("discovery.api.keys", subpath=token, _external=True)


@api.route("/new", methods=_ROUTED)
def new() -> Response:
    """Create an anonymous token, as discovery.etcd.io did; answer its URL as text."""
    if request.method != "GET":  # not even HEAD: it would make a token nobody sees
        raise MethodNotAllowed(f"method {request.method} is not allowed")
    size = parse_size(request.args.get("size"))
    install = _bearer_install()
    if install is not None:
        # A provisioning container: the token is the install's (on its page, in its quota).
        _, token = DiscoveryToken.create(
            size,
            install=install.key,
            provisioner_token=_bearer(),
            max_per_install=limits.limit("DISCOVERY_TOKENS_PER_INSTALL"),
        )
        log.info("made a discovery token of size %d for an install's provisioner", size)
        return _text(discovery_url(token))
    limits.NEW_TOKENS.take()  # a GET that stores: bounded per client, counted if stored
    _, token = DiscoveryToken.create(size)
    return _text(discovery_url(token))


def _text(url: str) -> Response:
    response = Response(url, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer() -> str:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def _bearer_install() -> Install | None:
    """The install an ``Authorization: Bearer <provisioner token>`` names; None without one.

    A credential that names no live install is refused (401), never served anonymously:
    the container asked for its install's token and must hear that it did not get one.
    """
    if "Authorization" not in request.headers:
        return None
    install = Install.get_by_provisioner_token(_bearer())
    if install is None or install.expired:
        raise Unauthorized("Authorization: no live install has this provisioner token")
    return install


# --- the keys under a token -------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The key a request names: the token's directory and the path below it."""

    token: str
    rest: tuple[str, ...]

    @classmethod
    def parse(cls, subpath: str) -> _Target:
        parts = tuple(p for p in subpath.split("/") if p)
        if not parts:
            raise KeyNotFound(request.script_root + PREFIX)
        return cls(parts[0], parts[1:])

    @property
    def directory(self) -> str:
        return f"{request.script_root}{PREFIX}/{self.token}"

    @property
    def key(self) -> str:
        return "/".join([self.directory, *self.rest])

    @property
    def is_directory(self) -> bool:
        return self.rest == ()

    @property
    def member_id(self) -> str | None:
        if len(self.rest) == 1 and is_member_id(self.rest[0]):
            return self.rest[0]
        return None

    def is_config(self) -> bool:
        return self.rest in ((CONFIG,), (CONFIG, SIZE))


@api.route(PREFIX, defaults={"subpath": ""}, methods=_ROUTED, strict_slashes=False)
@api.route(f"{PREFIX}/<path:subpath>", methods=_ROUTED)
def keys(subpath: str) -> Response:
    """One etcd v2 keys request under a discovery token."""
    target = _Target.parse(subpath)
    directory = DiscoveryToken.lookup(target.token)
    if directory is None:
        raise KeyNotFound(target.key)
    try:
        if request.method in ("GET", "HEAD"):
            return _get(target, directory)
        if request.method == "PUT":
            return _put(target, directory)
        raise MethodNotAllowed(f"method {request.method} is not allowed")
    except DiscoveryError as exc:
        return _error(exc, directory.index)


# etcd registers with a bare PUT: the token in the path is the credential, not a cookie.
csrf.exempt(new)
csrf.exempt(keys)


def _config_node(directory: DiscoveryToken, target: _Target, with_size: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "key": f"{target.directory}/{CONFIG}",
        "dir": True,
        "modifiedIndex": CONFIG_INDEX,
        "createdIndex": CONFIG_INDEX,
    }
    if with_size:
        config["nodes"] = [_size_node(directory, target)]
    return config


def _size_node(directory: DiscoveryToken, target: _Target) -> dict[str, Any]:
    return {
        "key": f"{target.directory}/{CONFIG}/{SIZE}",
        "value": str(directory.size),
        "modifiedIndex": CONFIG_INDEX,
        "createdIndex": CONFIG_INDEX,
    }


def _member_node(member: DiscoveryMember, target: _Target) -> dict[str, Any]:
    return {
        "key": f"{target.directory}/{member.member_id}",
        "value": member.value,
        "modifiedIndex": member.created_index,
        "createdIndex": member.created_index,
    }


def _get(target: _Target, directory: DiscoveryToken) -> Response:
    flags = {name: bool_arg(name) for name in BOOL_ARGS}
    if flags["wait"]:
        return _watch(target, directory, flags["recursive"])
    if target.is_directory:
        members = [_member_node(m, target) for m in directory.members()]
        if flags["sorted"]:
            members.sort(key=lambda n: n["key"])
        node: dict[str, Any] = {
            "key": target.directory,
            "dir": True,
            "nodes": [_config_node(directory, target, flags["recursive"]), *members],
            "modifiedIndex": CONFIG_INDEX,
            "createdIndex": CONFIG_INDEX,
        }
    elif target.rest == (CONFIG,):
        node = _config_node(directory, target, True)
    elif target.rest == (CONFIG, SIZE):
        node = _size_node(directory, target)
    else:
        member = _lookup_member(directory, target)
        if member is None:
            raise KeyNotFound(target.key)
        node = _member_node(member, target)
    return _json({"action": "get", "node": node}, 200, directory.index)


def _lookup_member(directory: DiscoveryToken, target: _Target) -> DiscoveryMember | None:
    if target.member_id is None:
        return None
    member: DiscoveryMember | None = ndb.Key(
        DiscoveryMember, target.member_id, parent=directory.key
    ).get(use_cache=False, timeout=policy.DATASTORE_TIMEOUT, retries=policy.DATASTORE_RETRIES)
    return member


def _watch(target: _Target, directory: DiscoveryToken, recursive: bool) -> Response:
    """Answer the first member created at or after waitIndex that the watch covers.

    With none before the watch timeout, answer 200 with an empty body: etcd asks again.
    """
    since = wait_index(directory.index)
    covers: Callable[[DiscoveryMember], bool]
    if target.is_directory and recursive:
        covers = lambda member: True  # noqa: E731
    elif target.member_id is not None:
        covers = lambda member: member.member_id == target.member_id  # noqa: E731
    else:
        covers = lambda member: False  # noqa: E731
    timeout = float(
        current_app.config.get("DISCOVERY_WATCH_TIMEOUT", policy.DISCOVERY_WATCH_TIMEOUT)
    )
    try:
        # What is already there is answered without waiting, so without a slot.
        member, index = next_member(target.token, directory, since, covers, 0)
        if member is None:
            member, index = _wait(target, directory, since, covers, timeout)
    except KeyNotFound:
        raise KeyNotFound(target.key) from None
    if member is None:
        response = Response(b"", status=200, mimetype="application/json")
        response.headers["X-Etcd-Index"] = str(index)
        return response
    return _json({"action": "create", "node": _member_node(member, target)}, 200, index)


def _wait(
    target: _Target,
    directory: DiscoveryToken,
    since: int,
    covers: Callable[[DiscoveryMember], bool],
    timeout: float,
) -> tuple[DiscoveryMember | None, int]:
    """next_member in one of this process's watch slots (LimitReached when none is free)."""
    slot = watch_slots.hold(
        target.token,
        limits.client_address(),
        per_token=directory.size,
        per_client=limits.limit("DISCOVERY_WATCHES_PER_CLIENT"),
        total=limits.limit("DISCOVERY_WATCHES_PER_PROCESS"),
    )
    with slot:
        return next_member(target.token, directory, since, covers, timeout)


def _put(target: _Target, directory: DiscoveryToken) -> Response:
    if target.is_directory or target.is_config():
        raise NodeExists(target.key)
    member_id = target.member_id
    if member_id is None:
        raise InvalidField("key must be a member id: 1 to 16 lowercase hex digits")
    for name in request.args:
        if name != "prevExist":
            raise InvalidField(f"{name} is not supported here")
    if request.args.get("prevExist") != "false":
        raise InvalidField("prevExist=false is required: a member registers once")
    value = form_value()
    parse_peers(value)
    try:
        member = register(
            target.token,
            member_id,
            value,
            extra_per_size=limits.limit("DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE"),
        )
    except KeyNotFound:
        raise KeyNotFound(target.key) from None
    except NodeExists as exc:
        raise NodeExists(target.key, index=exc.index) from None
    member_registered(target.token)
    body = {"action": "create", "node": _member_node(member, target)}
    return _json(body, 201, member.created_index)
