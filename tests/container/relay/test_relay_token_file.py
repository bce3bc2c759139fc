"""The reporting token comes from a 0600 file; anything else is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.services.errors import SettingsError
from container.services.relay import REPORT_TOKEN_FILE_VAR, RelayTarget, relay_from_environment
from container.store import open_store
from tests.container.relay.conftest import TOKEN, summarize

URL = "http://127.0.0.1:9"


def _token_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "report-token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    return path


def test_the_token_is_read_from_a_0600_file(tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o600)
    target = RelayTarget.configured(
        {"VULCANO_INSTALLER_URL": URL, REPORT_TOKEN_FILE_VAR: str(path)}
    )
    assert target.token == TOKEN
    assert TOKEN not in repr(target)


def test_a_missing_token_file_says_so(tmp_path: Path) -> None:
    environ = {"VULCANO_INSTALLER_URL": URL, REPORT_TOKEN_FILE_VAR: str(tmp_path / "none")}
    with pytest.raises(SettingsError, match="no such file"):
        RelayTarget.configured(environ)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o644)
    environ = {"VULCANO_INSTALLER_URL": URL, REPORT_TOKEN_FILE_VAR: str(path)}
    with pytest.raises(SettingsError, match="mode 0644: must be 0600") as caught:
        RelayTarget.configured(environ)
    assert TOKEN not in str(caught.value)


def test_no_token_file_variable_is_an_error() -> None:
    with pytest.raises(SettingsError, match=REPORT_TOKEN_FILE_VAR):
        RelayTarget.configured({"VULCANO_INSTALLER_URL": URL})


def test_serve_runs_no_relay_without_a_token_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert relay_from_environment(store, summarize, {"VULCANO_INSTALLER_URL": URL}) is None
    path = _token_file(tmp_path, 0o640)
    environ = {"VULCANO_INSTALLER_URL": URL, REPORT_TOKEN_FILE_VAR: str(path)}
    with pytest.raises(SettingsError, match="must be 0600"):
        relay_from_environment(store, summarize, environ)
    path.chmod(0o600)
    relay = relay_from_environment(store, summarize, environ)
    assert relay is not None and relay.target.token == TOKEN


def test_a_file_without_a_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report-token"
    path.write_text("not a token, with spaces\n")
    path.chmod(0o600)
    environ = {"VULCANO_INSTALLER_URL": URL, REPORT_TOKEN_FILE_VAR: str(path)}
    with pytest.raises(SettingsError, match="does not hold a token"):
        RelayTarget.configured(environ)
