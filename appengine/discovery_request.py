"""Reading what etcd sends to the discovery API: boolean flags, waitIndex, the form body."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import request

from appengine.discovery_errors import (
    BodyTooLarge,
    IndexNaN,
    InvalidField,
    InvalidForm,
    ValueRequired,
)

# A registration form is one short `value`; anything bigger is not from etcd.
MAX_BODY = 4096
BOOL_ARGS = ("wait", "recursive", "sorted", "quorum", "stream")


def bool_arg(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1", "t"):
        return True
    if raw.lower() in ("false", "0", "f"):
        return False
    raise InvalidField(f"invalid value for {name}")


def wait_index(current: int) -> int:
    raw = request.args.get("waitIndex")
    if raw is None or raw == "":
        return current + 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise IndexNaN("waitIndex")
    since = int(raw)
    return since if since > 0 else current + 1


def form_value() -> str:
    """The one `value` field of a urlencoded body, or the error that says what is wrong."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidForm("body must be application/x-www-form-urlencoded")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge(f"body is longer than {MAX_BODY} bytes")
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BodyTooLarge(f"body is longer than {MAX_BODY} bytes")
    try:
        fields = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            errors="strict",
            max_num_fields=8,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidForm("body is not a urlencoded form") from None
    values = [v for k, v in fields if k == "value"]
    for name, _ in fields:
        if name != "value":
            raise InvalidField(f"{name} is not supported here")
    if len(values) > 1:
        raise InvalidForm("value given more than once")
    if not values or values[0] == "":
        raise ValueRequired("value")
    return values[0]
