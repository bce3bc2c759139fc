"""The real validators of user-data: `cloud-init schema -c` and `ignition-validate`.

Run on every document Vulcano renders, when the tool is installed (App Engine has
neither; the tests require both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from vulcano.cloudconfig import Document, InvalidDocument

# cloud-init's schema check starts a Python interpreter; a loaded machine can be slow.
VALIDATOR_TIMEOUT = 60.0


def _cloud_init_schema(path: str) -> list[str]:
    return ["cloud-init", "schema", "-c", path]


def _ignition_validate(path: str) -> list[str]:
    return ["ignition-validate", path]


VALIDATORS: dict[str, Callable[[str], list[str]]] = {
    "cloud-init": _cloud_init_schema,
    "coreos-legacy": _cloud_init_schema,  # coreos: is unknown to it; the rest is checked
    "flatcar": _ignition_validate,
}


def validator_available(flavour: str) -> bool:
    return shutil.which(VALIDATORS[flavour]("")[0]) is not None


def validate_with_tools(document: Document, required: bool = False) -> bool:
    """Run ``cloud-init schema -c`` or ``ignition-validate`` on the document.

    Returns False when the tool is not installed and not ``required``; raises
    InvalidDocument when it rejects the document (warnings count as rejections).
    """
    argv = VALIDATORS[document.flavour]
    if not validator_available(document.flavour):
        if required:
            raise InvalidDocument(f"validator {argv('')[0]} is not installed")
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".user-data", encoding="utf-8") as f:
        f.write(document.text)
        f.flush()
        result = subprocess.run(
            argv(f.name),
            capture_output=True,
            text=True,
            timeout=VALIDATOR_TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
    output = (result.stdout + result.stderr).strip()
    rejected = result.returncode != 0
    if document.flavour == "flatcar" and output:
        rejected = True  # ignition-validate exits 0 on warnings such as unused keys
    if rejected:
        raise InvalidDocument(f"{argv('')[0]} rejected the {document.flavour} document: {output}")
    return True
