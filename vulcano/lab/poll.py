"""The one poller of the lab: wait until a check holds, or fail naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check()`` until it returns something truthy and return that.

    An exception from ``check`` counts as "not yet" and is named in the TimeoutError
    raised after ``timeout`` seconds, with the last value seen.
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last_value, last_error = value, None
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    seen = f"last error: {last_error!r}" if last_error is not None else f"last: {last_value!r}"
    raise TimeoutError(f"{what} not ready after {timeout:g}s ({seen})")
