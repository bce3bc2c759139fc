"""The reference pages say what the code does: the CLI reference is written from the
commands, and every VULCANO_* variable the product reads is on the configuration page."""

from __future__ import annotations

import re
from pathlib import Path

from vulcano.lab import clidoc

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("appengine", "container", "agent", "vulcano", "templates")
_VARIABLE = re.compile(r"\bVULCANO_[A-Z0-9_]*[A-Z0-9]\b")
# Names that are not settings: prefixes composed in code, and the lab's own.
NOT_SETTINGS = {"VULCANO_KEYS", "VULCANO_SMTP"}


def _variables_in_product() -> dict[str, str]:
    found: dict[str, str] = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".j2", ".sh", ".toml") or "lab" in path.parts:
                continue
            for name in _VARIABLE.findall(path.read_text(errors="replace")):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return {k: v for k, v in found.items() if k not in NOT_SETTINGS}


def test_the_cli_reference_is_written_from_the_commands() -> None:
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == clidoc.reference(), "run: python -m vulcano.lab.clidoc > docs/cli.md"


def test_the_cli_reference_names_every_command() -> None:
    text = clidoc.reference()
    for command in ("vulcano cluster create", "vulcano list-units", "vulcano-agent run"):
        assert f"### `{command}`" in text


def test_every_variable_the_product_reads_is_documented() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = {name: where for name, where in _variables_in_product().items() if name not in page}
    assert missing == {}


def test_the_variable_finder_finds_variables() -> None:
    found = _variables_in_product()
    assert {"VULCANO_SECRET_KEY", "VULCANO_STATE_DIR", "VULCANO_ETCD_ENDPOINTS"} <= set(found)
