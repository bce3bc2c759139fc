"""The root of every error Vulcano raises on purpose."""

from __future__ import annotations


class VulcanoError(Exception):
    """Base of every error Vulcano raises on purpose; its message is for the user."""


class UnitFileError(VulcanoError, ValueError):
    """A unit file or unit name we cannot accept; the message says which line."""


class UnitNameError(UnitFileError):
    """A unit name that is not a valid systemd unit name."""


class MachineDecommissioned(VulcanoError):
    """This machine was removed from its cluster on purpose (`vulcano machine remove`)."""
