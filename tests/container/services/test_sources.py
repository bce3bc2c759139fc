"""Unit arguments and uploads become unit sources; bad ones are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.services import sources
from container.services.errors import UnitSourceError
from tests.container.conftest import DB
from vulcano.records import UnitSource


def test_paths_bring_their_text_and_names_stand_alone(files: Path) -> None:
    got = sources.from_arguments([str(files / "db.service"), "web@1.service"])
    assert got == [UnitSource("db.service", DB), UnitSource("web@1.service")]
    assert sources.names([str(files / "db.service"), "web@1.service"]) == [
        "db.service",
        "web@1.service",
    ]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnitSourceError, match=r"nosuch.service: No such file"):
        sources.from_arguments([str(tmp_path / "nosuch.service")])


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.service").write_bytes(b"\xff\xfe")
    with pytest.raises(UnitSourceError, match=r"x.service: not UTF-8 text"):
        sources.from_arguments([str(tmp_path / "x.service")])
    with pytest.raises(UnitSourceError, match=r"x.service: not UTF-8 text"):
        sources.from_bytes("x.service", b"\xff\xfe")


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(UnitSourceError, match=r"not a valid unit name"):
        sources.from_arguments(["not a name"])
    with pytest.raises(UnitSourceError, match=r"not a valid unit name"):
        sources.from_bytes("not a name", DB.encode())


def test_an_upload_becomes_a_source() -> None:
    assert sources.from_bytes("db.service", DB.encode()) == UnitSource("db.service", DB)
