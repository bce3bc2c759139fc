"""The demo without root or podman: the installer, the panel and one local agent."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import requests

from vulcano.lab import provisioning, services
from vulcano.lab.demo.parts import (
    ALERT_ADDRESS,
    CLUSTER,
    HELLO_UNIT,
    VULCANO_CLI,
    DemoError,
    Ports,
    Progress,
    Shown,
    emulator_and_mail,
    step,
)  # fmt: skip
from vulcano.lab.installer import installer_server
from vulcano.lab.poll import wait_for
from vulcano.lab.stack import set_alerts, status_url

# --- without root or podman -----------------------------------------------------------


def own_address() -> str:
    """This machine's address on its default route: what the local agent announces (a
    route lookup only: connecting a UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: any address off-link will do
        except OSError as exc:
            raise DemoError(f"no IPv4 route on this machine for the local agent: {exc}") from None
        return str(probe.getsockname()[0])


def _made(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def bring_up_reduced(
    stack: contextlib.ExitStack, args: argparse.Namespace, progress: Progress, tmp: Path, why: str
) -> Shown:
    ports: Ports = args.ports
    shown = Shown(mode="reduced", service=None)
    shown.notes.append(f"no machines, overlay or balancer: {why}")
    emulator, env = emulator_and_mail(stack, progress, shown, ports.mail)
    installer = step(
        progress, "starting the hosted installer (gunicorn)", 60,
        lambda: stack.enter_context(installer_server(
            emulator, tmp / "installer.log", port=ports.installer, workers=2, threads=8,
            env_extra=env,
        )),
    )  # fmt: skip
    shown.installer = installer.url
    shown.heartbeat = f"{installer.url}/api/heartbeat"
    document = provisioning.create_install(installer, cluster_name=CLUSTER, size=1)
    set_alerts(installer.url, document.token, ALERT_ADDRESS)
    shown.manage = f"{installer.url}/installs/{document.token}"
    shown.status_page = status_url(installer.url, document.token)

    if shutil.which("etcd") is None:
        shown.notes.append("etcd is not installed (Debian package etcd-server): no local agent")
        etcd_endpoint = ""
    else:
        etcd = step(progress, "starting a local etcd", 30,
                     lambda: stack.enter_context(services.etcd_server(_made(tmp / "etcd"))))  # fmt: skip  # noqa: E501
        etcd_endpoint = etcd.endpoint
        shown.etcd = [etcd_endpoint]
        agent_log = open(tmp / "agent.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(agent_log.close)
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--endpoint", etcd_endpoint, "--no-overlay",
             "--public-ip", own_address(), "--state-dir", str(tmp / "agent"), "--ttl", "5"],
            stdout=agent_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        stack.callback(services.stop_process, agent)
        shown.machines.append({"id": "", "name": f"pid {agent.pid}", "ip": own_address(),
                               "hostname": socket.gethostname()})  # fmt: skip

    panel_log = tmp / "panel.log"
    out = open(panel_log, "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(out.close)
    panel_env = {**os.environ, "VULCANO_ETCD_ENDPOINTS": etcd_endpoint} if etcd_endpoint else None
    panel = subprocess.Popen(
        [sys.executable, "-m", "container", "serve", "--cluster-name", CLUSTER,
         "--cluster-size", "1", "--state-dir", str(tmp / "state"), "--address", "127.0.0.1",
         "--port", str(ports.panel)],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=panel_env,
    )  # fmt: skip
    stack.callback(services.stop_process, panel)
    shown.panel = f"https://127.0.0.1:{ports.panel}"
    # the certificate the panel makes on its first start: what the demo verifies it with
    cert = tmp / "state" / "panel-tls.pem"

    def panel_up() -> bool:
        if panel.poll() is not None:
            raise DemoError(f"the panel exited: {panel_log.read_text(errors='replace')[-2000:]}")
        try:
            return (
                cert.exists()
                and requests.get(shown.panel + "/healthz", timeout=2, verify=str(cert)).ok
            )
        except requests.RequestException:
            return False

    step(progress, "starting the provisioning panel", 60,
          lambda: wait_for(panel_up, 60, "the panel", 0.5))  # fmt: skip
    found = re.search(r"generated admin password \([^)]*\): (\S+)", panel_log.read_text())
    shown.panel_password = found.group(1) if found else "(see the panel's log)"
    printed = re.findall(r"certificate SHA-256 fingerprint (\S+)", panel_log.read_text())
    shown.panel_fingerprint = printed[-1] if printed else "(see the panel's log)"
    shown.panel_certificate = str(cert)
    if etcd_endpoint:
        hello = tmp / "hello.service"
        hello.write_text(HELLO_UNIT)
        cli = [sys.executable, "-m", "container", "--endpoint", etcd_endpoint]
        for command in (["submit", str(hello)], ["start", "hello.service"]):
            done = subprocess.run([*cli, *command], capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise DemoError(f"vulcano {' '.join(command)}: {done.stdout}{done.stderr}")
        shown.try_commands = [
            f"{VULCANO_CLI} --endpoint {etcd_endpoint} list-units",
            f"{VULCANO_CLI} --endpoint {etcd_endpoint} journal hello.service",
        ]
    shown.notes.append(
        "the installer keeps installs in the Datastore emulator's memory: they are gone "
        "when the demo stops"
    )
    return shown
