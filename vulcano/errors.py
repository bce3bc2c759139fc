"""The root of every error Vulcano raises on purpose."""

from __future__ import annotations


class VulcanoError(Exception):
    """Base of every error Vulcano raises on purpose; its message is for the user."""
