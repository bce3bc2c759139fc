"""`vulcano serve`: bad settings are refused before serving; gunicorn serves the panel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from container.cli import main
from container.panel.server import ServerOptions, gunicorn_settings
from tests.container.panel.served import login, served_panel
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

ROOT = Path(__file__).resolve().parents[3]


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cluster-size", "3"], "Missing option '--cluster-name'"),
        (["--cluster-name", "prod"], "Missing option '--cluster-size'"),
        (["--cluster-name", "Prod!", "--cluster-size", "3"], "--cluster-name"),
        (["--cluster-name", "prod", "--cluster-size", "many"], "--cluster-size"),
        (["--cluster-name", "prod", "--cluster-size", "3", "--state-dir", "rel"], "absolute"),
        (["--cluster-name", "prod", "--cluster-size", "3", "--port", "0"], "--port"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_flag(args: list[str], says: str) -> None:
    code, output = serve(*args)
    assert code == 2
    assert says in output


def test_the_settings_come_from_the_units_environment_too() -> None:
    env = {"VULCANO_CLUSTER_NAME": "prod", "VULCANO_CLUSTER_SIZE": "0"}
    code, output = serve(env=env)
    assert code == 2
    assert "--cluster-size" in output
    assert "between 1 and 100" in output


def test_a_state_dir_it_cannot_write_is_an_error_before_serving(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = serve(
        "--cluster-name", "prod", "--cluster-size", "3", "--state-dir", str(blocker)
    )
    assert code == 1
    assert f"state directory {blocker}" in output


def test_gunicorn_binds_ipv6_addresses_in_brackets() -> None:
    assert gunicorn_settings(ServerOptions("::1", 8080))["bind"] == ["[::1]:8080"]
    assert gunicorn_settings(ServerOptions("0.0.0.0", 80))["bind"] == ["0.0.0.0:80"]


@pytest.mark.timeout(60)
def test_serve_answers_health_under_gunicorn_until_terminated(tmp_path: Path) -> None:
    port = reserve_port()
    env = {
        **os.environ,
        "VULCANO_CLUSTER_NAME": "prod",
        "VULCANO_CLUSTER_SIZE": "3",
        "VULCANO_STATE_DIR": str(tmp_path / "state"),
        "VULCANO_PANEL_PORT": str(port),
    }
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "container", "serve", "--address", "127.0.0.1", "--plain-http"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        answer = wait_for(lambda: requests.get(url, timeout=2), 30, f"panel on {url}", 0.1)
        assert answer.status_code == 200
        assert answer.json()["cluster_name"] == "prod"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = log.read_text()
    assert "gunicorn" in text.lower()
    assert '"GET /healthz HTTP/1.1" 200' in text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_generated_password_is_printed_once_and_kept_across_restarts(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "serve.log"
    with served_panel(state, log) as panel:
        lines = [line for line in panel.log().splitlines() if "generated admin password" in line]
        assert len(lines) == 1
        password = lines[0].rsplit(" ", 1)[-1]
        login(panel.url, password)
    with served_panel(state, log) as panel:
        login(panel.url, password)  # the restarted container kept its hash
    assert log.read_text().count(password) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_environment_password_is_never_logged(tmp_path: Path) -> None:
    env = {"VULCANO_ADMIN_PASSWORD": "s3cret-from-the-unit"}
    with served_panel(tmp_path / "state", tmp_path / "serve.log", env) as panel:
        login(panel.url, "s3cret-from-the-unit")
        assert requests.get(panel.url + "/clusters", timeout=10).url.endswith(
            "/login?next=/clusters"
        )
        text = panel.log()
    assert "s3cret-from-the-unit" not in text
    assert "generated admin password" not in text
    assert '"POST /login HTTP/1.1" 302' in text
