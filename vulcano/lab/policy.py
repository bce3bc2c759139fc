"""Every timeout of the lab (images and machines), named, in one place.

Generous on purpose: several engineers share two cores, and a cold build downloads a
Debian root filesystem.
"""

from __future__ import annotations

# mmdebstrap of a bookworm rootfs: measured ~50 s warm; the mirror can be slow.
ROOTFS_BUILD_TIMEOUT = 900.0
# `podman import` of a 300-450 MB tarball.
IMPORT_TIMEOUT = 300.0
# `podman build` of the Vulcano image (no network: every wheel is in the context).
IMAGE_BUILD_TIMEOUT = 900.0
# `pip download` of the wheelhouse from PyPI.
WHEELHOUSE_TIMEOUT = 600.0
# A quick podman call: inspect, tag, exists, rm.
PODMAN_TIMEOUT = 60.0
# `podman run -d` of a machine (creates the container; systemd boots afterwards).
MACHINE_START_TIMEOUT = 120.0
# From `podman run` to `cloud-init status` saying done or error.
CLOUD_INIT_TIMEOUT = 300.0
# One command run inside a machine with `podman exec`.
EXEC_TIMEOUT = 60.0
# `podman stop` gives systemd this long to shut down before podman kills it.
STOP_GRACE_SECONDS = 10
# Polling interval while waiting for a machine.
POLL_INTERVAL = 0.5
# Waiting for another process that builds the same cached thing (a file lock).
CACHE_LOCK_TIMEOUT = 1800.0
# One request to the lab's installer (its form, an install, a permalink) on loopback.
INSTALLER_REQUEST_TIMEOUT = 10.0
# The invariant sampler (vulcano/lab/invariants.py): a sample every few milliseconds, so
# two copies that overlap for longer are seen; its thread's join when stopped.
SAMPLER_INTERVAL = 0.005
SAMPLER_STOP_TIMEOUT = 10.0
