"""`vulcano compose convert`: files written or shown, the report as a table or JSON, and
the exit code scripts can use. No cluster is needed to convert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from container.cli import main

FILES = Path(__file__).parent / "files"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FILES / name, target)
    return target / "docker-compose.yml"


def test_convert_writes_the_unit_files_and_prints_the_report(tmp_path: Path) -> None:
    file = _copy(tmp_path, "webredis")
    out = tmp_path / "units"
    r = CliRunner().invoke(main, ["compose", "convert", str(file), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [
        "webredis-redis.service",
        "webredis-web@.service",
    ]
    text = (out / "webredis-web@.service").read_text()
    assert "ExecStart=docker run --rm --name webredis-web-%i --network host" in text
    lines = r.stdout.splitlines()
    assert lines[0] == "KEY\tRESULT\tDETAIL"
    assert "services.web.deploy.replicas\tconverted\t" in r.stdout
    assert len(lines) == 1 + 19  # a row for every key


def test_dry_run_prints_the_units_and_writes_nothing(tmp_path: Path) -> None:
    file = _copy(tmp_path, "webredis")
    out = tmp_path / "units"
    r = CliRunner().invoke(
        main,
        [
            "compose",
            "convert",
            str(file),
            "--out",
            str(out),
            "--dry-run",
            "--prefix",
            "shop",
            "--runtime",
            "podman",
            "--no-legend",
        ],
    )
    assert r.exit_code == 0, r.output
    assert not out.exists()
    assert "# shop-web@.service\n[Unit]\n" in r.stdout
    assert "ExecStop=podman stop shop-web-%i\n" in r.stdout
    assert "KEY\tRESULT" not in r.stdout


def test_json_report_has_every_row(tmp_path: Path) -> None:
    file = _copy(tmp_path, "inexpressible")
    r = CliRunner().invoke(
        main, ["compose", "convert", str(file), "--dry-run", "--json", "--prefix", "t"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {"key": "services.app.privileged", "result": "not expressible"}.items() <= rows[
        2
    ].items()
    assert len(rows) == 24


def test_a_file_that_cannot_be_converted_exits_1_naming_the_key(tmp_path: Path) -> None:
    file = tmp_path / "docker-compose.yml"
    file.write_text("services:\n  web:\n    image: x\n    deploy: {replicas: -1}\n")
    r = CliRunner().invoke(main, ["compose", "convert", str(file), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "Error: services.web.deploy.replicas: wants a whole number from 1 to 100" in r.output
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(main, ["compose", "convert", str(tmp_path / "missing.yml")])
    assert r.exit_code == 1 and "No such file" in r.output
    r = CliRunner().invoke(main, ["compose", "convert", str(file), "--runtime", "rkt"])
    assert r.exit_code == 2


def test_up_and_down_refuse_a_bad_file_before_asking_the_cluster(tmp_path: Path) -> None:
    file = tmp_path / "docker-compose.yml"
    file.write_text("services:\n  web:\n    build: .\n")
    for command in ("up", "down"):
        r = CliRunner().invoke(
            main, ["--endpoint", "http://127.0.0.1:9", "compose", command, str(file)]
        )
        assert r.exit_code == 1, r.output
        assert "Error: services.web.build: a build-only service is not expressible" in r.output
