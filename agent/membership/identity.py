"""This host's machine id (its record is `vulcano.records.Machine`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ETC_MACHINE_ID = Path("/etc/machine-id")


def machine_id(state_dir: Path, etc_machine_id: Path = ETC_MACHINE_ID) -> str:
    """This host's id: /etc/machine-id, else one generated once and kept in the state dir."""
    try:
        value = etc_machine_id.read_text().strip()
    except OSError:
        value = ""
    if value:
        return value
    persisted = state_dir / "machine-id"
    try:
        value = persisted.read_text().strip()
    except OSError:
        value = ""
    if value:
        return value
    value = secrets.token_hex(16)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = persisted.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, persisted)
    return value
