"""The README's demo, run as a user runs it (headless): everything comes up, the balanced
service answers from three machines, the hosted page shows them, a killed machine turns
the page red and mails an alert, and SIGTERM leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import require, require_root
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.stack import cluster_state, status_count

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 1200.0  # a cold cache builds the images first
DOWN_TIMEOUT = 180.0
STOP_TIMEOUT = 180.0
_WEB = re.compile(r"^web (\d) on (\S+)")


def _netns() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def _links() -> set[str]:
    done = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines()}


def _containers() -> set[str]:
    done = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True
    )
    return set(done.stdout.split())


def _demo_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("vulcano-demo-*")}


def demo_names(shown: dict[str, Any]) -> tuple[str, str]:
    """The prefix of the demo's machine names (its run) and its underlay's token, from a
    machine's podman name: vulcano-m-<run>-<token>-n<i>."""
    found = re.fullmatch(r"(vulcano-m-[0-9a-f]+-)([0-9a-f]+)-n\d+", shown["machines"][0]["name"])
    assert found, shown["machines"]
    return found.group(1), found.group(2)


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The demo's one line of JSON on stdout (or AssertionError with its progress)."""
    found: list[str] = []
    reader = threading.Thread(
        target=lambda: found.append(proc.stdout.readline() if proc.stdout else "")
    )
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    if not found or not found[0].strip():
        raise AssertionError(f"the demo printed no JSON (exit {proc.poll()})")
    return found[0]


def test_the_demo_comes_up_alerts_on_a_killed_machine_and_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    require(subprocess.run(["which", "podman"], capture_output=True).returncode == 0, "podman")
    dirs_before = _demo_dirs()
    ports = [reserve_port() for _ in range(4)]
    progress = tmp_path / "demo.err"
    with open(progress, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vulcano.lab.demo", "--headless",
             "--port", str(ports[0]), "--panel-port", str(ports[1]),
             "--service-port", str(ports[2]), "--mail-port", str(ports[3])],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    try:
        try:
            shown: dict[str, Any] = json.loads(_first_line(proc, UP_TIMEOUT))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{progress.read_text()[-6000:]}") from None
        for key in ("installer", "status_page", "panel", "panel_password", "service",
                    "heartbeat", "etcd", "etcd_client", "mail", "machines"):  # fmt: skip
            assert shown.get(key), (key, shown)
        assert len(shown["machines"]) == 3 and all(m["id"] and m["name"] for m in shown["machines"])
        assert len(shown["etcd"]) == 3

        # etcd is on mutual TLS: the client files the demo gives are admitted, and the
        # CLI without a client certificate is refused, saying so
        tls = shown["etcd_client"]
        base = [sys.executable, "-m", "container", "--endpoint", shown["etcd"][0]]
        base += ["--cacert", tls["cacert"]]
        listed = subprocess.run(
            [*base, "--cert", tls["cert"], "--key", tls["key"], "list-machines", "--no-legend"],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )  # fmt: skip
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed.stderr
        refused = subprocess.run(
            [*base, "list-machines"], capture_output=True, text=True, timeout=120, check=False,
            cwd=ROOT,
        )  # fmt: skip
        assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr

        # The balanced service: every answer is a web instance; all three answer.
        answers = Counter()
        for _ in range(60):
            text = requests.get(shown["service"], timeout=5).text
            found = _WEB.match(text)
            assert found, text
            answers[found.group(1)] += 1
        assert set(answers) == {"1", "2", "3"}, answers

        # The panel over HTTPS, verified against its own certificate, whose fingerprint
        # the provisioning container reported to the install page.
        with requests.Session() as panel:
            panel.trust_env = False  # else REQUESTS_CA_BUNDLE wins over verify (requests #3829)
            panel.verify = shown["panel_certificate"]
            login = panel.get(shown["panel"] + "/login", timeout=10)
            assert login.ok
        wait_for(
            lambda: shown["panel_fingerprint"] in requests.get(shown["manage"], timeout=10).text,
            60, "the panel's fingerprint on the install page", 2.0,
        )  # fmt: skip

        page = requests.get(shown["status_page"], timeout=10).text
        assert status_count(page, "up") == 3 and cluster_state(page) == "reporting", page[:2000]

        # Kill a machine (not the one the service's forward enters).
        victim = shown["machines"][-1]["name"]
        subprocess.run(["podman", "kill", victim], check=True, capture_output=True)
        wait_for(
            lambda: status_count(requests.get(shown["status_page"], timeout=10).text, "down") == 1,
            DOWN_TIMEOUT, "the killed machine down on the hosted page", 2.0,
        )  # fmt: skip

        def mailed() -> list[dict[str, str]]:
            rows = requests.get(shown["mail"] + "?format=json", timeout=10).json()
            return [r for r in rows if "down" in r["subject"].lower()]

        assert wait_for(mailed, 90, "the down alert on the mail page", 2.0)
        # The service still answers (the balancer dropped the dead machine's instance).
        for _ in range(10):
            assert _WEB.match(requests.get(shown["service"], timeout=5).text)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(
                f"the demo did not stop:\n{progress.read_text()[-4000:]}"
            ) from None
        if proc.stdout is not None:
            proc.stdout.close()
    log = progress.read_text()
    assert code == 0, log[-4000:]
    assert "stopped; nothing is left running" in log
    # Nothing left of the demo's own: no namespace or link of its underlay (named with its
    # token), no machine of its run, no directory, no process. (Other tests on this machine
    # may make namespaces meanwhile: only the demo's names count.)
    run, token = demo_names(shown)
    assert not {n for n in _netns() if token in n}, _netns()
    assert not {n for n in _links() if token in n}, _links()
    assert not {n for n in _containers() if n.startswith(run)}, _containers()
    assert _demo_dirs() <= dirs_before
    time.sleep(1.0)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
