"""The Vulcano image's public name: what the build publishes and the installer defaults to.

One image serves both roles: run as-is it is the provisioning container; with the
entrypoint ``vulcano-agent`` it is what a node runs. ``container/Containerfile`` builds
it; ``python -m vulcano.lab.images`` (``nox -s image``) builds it with podman.
"""

from __future__ import annotations

REPOSITORY = "ghcr.io/vulcano-project/vulcano"
# The project's version (pyproject.toml); a test keeps the two equal.
VERSION = "0.1.0"
REFERENCE = f"{REPOSITORY}:{VERSION}"
# The image's non-root user and group: state volumes must be writable by this id.
USER_ID = 10001
STATE_DIR = "/var/lib/vulcano"
