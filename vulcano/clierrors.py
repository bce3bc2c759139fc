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
from vulcano.etcd import client_error_message

T = TypeVar("T")


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn our errors and etcd's, raised inside the block, into click's."""
    try:
        yield
    except VulcanoError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        message = client_error_message(exc)
        if message is None:
            raise
        raise click.ClickException(message) from None


def guarded(call: Callable[[], T]) -> T:
    """``call()``, with its errors reported as click's."""
    with reported():
        return call()
