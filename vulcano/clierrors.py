"""How both command lines show an error: a message that says what went wrong, exit 1.

Vulcano's own errors (`VulcanoError`) carry a message meant for the operator; etcd's
client errors are named as etcd's. Usage errors stay click's (exit 2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import click

from vulcano.errors import VulcanoError

T = TypeVar("T")


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn our errors and etcd's, raised inside the block, into click's."""
    import etcd3.exceptions
    import grpc  # type: ignore[import-untyped]

    try:
        yield
    except VulcanoError as exc:
        raise click.ClickException(str(exc)) from None
    except etcd3.exceptions.Etcd3Exception as exc:
        raise click.ClickException(f"etcd: {type(exc).__name__}: {exc}") from None
    except grpc.RpcError as exc:
        details = exc.details() if hasattr(exc, "details") else str(exc)
        raise click.ClickException(f"etcd: {details}") from None


def guarded(call: Callable[[], T]) -> T:
    """``call()``, with its errors reported as click's."""
    with reported():
        return call()
