"""The error a Compose file we cannot convert raises: it names the key path."""

from __future__ import annotations

from vulcano.errors import VulcanoError


class ComposeError(VulcanoError, ValueError):
    """A Compose file we cannot convert; ``key`` is the path of the key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message
