"""The provisioning image the installer offers, pinned by digest when its digest is known.

The release that publishes the image learns its digest from the push itself (`podman
push --digestfile`, or the registry's answer to the push) and deploys the installer with
VULCANO_PROVISIONER_IMAGE (the tag, e.g. ghcr.io/vulcano/provisioner:1.0) and
VULCANO_PROVISIONER_DIGEST (sha256:...). User-data generated for that image then names
it as `tag@sha256:...`: a machine runs exactly the image released, whatever the tag says
later. An image the user names with its own digest is kept as given; any other image is
not ours to pin, and is kept as given too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from vulcano.image import REFERENCE as PUBLISHED_IMAGE

# The image `nox -s image` builds and publishes (vulcano/image.py).
DEFAULT_IMAGE = PUBLISHED_IMAGE
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class BadDigest(ValueError):
    """VULCANO_PROVISIONER_DIGEST is not a sha256 digest."""


def from_environment() -> dict[str, str]:
    """PROVISIONER_IMAGE and PROVISIONER_DIGEST, from the environment where set."""
    found = {}
    for name in ("PROVISIONER_IMAGE", "PROVISIONER_DIGEST"):
        value = os.environ.get(f"VULCANO_{name}", "").strip()
        if value:
            found[name] = value
    return found


def check(config: Mapping[str, Any]) -> None:
    digest = config.get("PROVISIONER_DIGEST")
    if digest is not None and not _DIGEST_RE.fullmatch(digest):
        raise BadDigest(f"VULCANO_PROVISIONER_DIGEST={digest!r}: must be sha256: and 64 hex digits")


def offered(config: Mapping[str, Any]) -> str:
    """The image the form proposes: the released tag."""
    image: str = config.get("PROVISIONER_IMAGE") or DEFAULT_IMAGE
    return image


def pinned(image: str, config: Mapping[str, Any]) -> str:
    """``image`` as generated user-data names it: with the released digest when known."""
    digest = config.get("PROVISIONER_DIGEST")
    if "@" in image or digest is None or image != offered(config):
        return image
    return f"{image}@{digest}"
