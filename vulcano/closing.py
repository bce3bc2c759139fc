"""Things that hold a connection and close it when a ``with`` block ends."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class ClosesOnExit(abc.ABC):
    """A ``with`` block around this object calls its ``close()`` as the block ends."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what the object holds; it may be called more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
