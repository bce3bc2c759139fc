"""This host's SSH host keys, as its machine record publishes them.

The provisioning container pins each machine's keys from its record, so it never has
to trust a node on first use. Only public keys are read (``ssh_host_*_key.pub``); a
file that is not a valid key is skipped with a warning, never published.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vulcano.sshkeys import SSHKeyError, parse_key

log = logging.getLogger(__name__)

DEFAULT_HOST_KEY_DIR = Path("/etc/ssh")
PATTERN = "ssh_host_*_key.pub"


def read_host_keys(directory: Path = DEFAULT_HOST_KEY_DIR) -> tuple[str, ...]:
    """The host's public keys as ``type base64`` lines, sorted; none when sshd has none."""
    lines = []
    for path in sorted(directory.glob(PATTERN)):
        try:
            key = parse_key(path.read_text().strip())
        except (OSError, UnicodeDecodeError, SSHKeyError) as exc:
            log.warning("not publishing host key %s: %s", path, exc)
            continue
        lines.append(f"{key.type} {key.line.split()[1]}")
    return tuple(lines)
