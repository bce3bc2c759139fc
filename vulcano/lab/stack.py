"""The whole system's pieces as the chain test and the demo drive them.

The provisioning machine's container is reached the way its user reaches it: `vulcano`
commands through `docker exec`, the panel through a loopback forward into the machine's
namespace; the hosted installer's pages are read as a browser reads them.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from vulcano.lab import policy, provisioning
from vulcano.lab.errors import LabError
from vulcano.lab.forward import PortForward
from vulcano.lab.machines import Machine
from vulcano.lab.poll import wait_for

CONTAINER = provisioning.PROVISIONER_CONTAINER
# From cloud-init done to the panel answering: docker loads and starts the image.
PANEL_UP_TIMEOUT = 300.0
COMMAND_TIMEOUT = 180.0
_PASSWORD = re.compile(r"generated admin password \([^)]*\): (\S+)")
_FINGERPRINT = re.compile(r"certificate SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")
# the certificate `vulcano serve` made on its first start, in the container's state dir
_PANEL_CERT = 'cat "$VULCANO_STATE_DIR/panel-tls.pem"'

_STATUS_LINK = re.compile(r'id="status-link" href="([^"]+)"')
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_CLUSTER_STATE = re.compile(r'id="cluster-state"[^>]*data-state="([a-z-]+)"')


@dataclass
class Provisioner:
    """The provisioning machine and the container its user-data started."""

    machine: Machine

    def vulcano(self, *args: str, check: bool = True, stdin: str | None = None) -> tuple[int, str]:
        """`vulcano ARGS` in the provisioning container: (exit status, stdout+stderr)."""
        flags = ["-i"] if stdin is not None else []
        done = self.machine.exec(
            ["docker", "exec", *flags, CONTAINER, "vulcano", *args],
            check=False,
            input=stdin,
            timeout=COMMAND_TIMEOUT,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise LabError(f"vulcano {shlex.join(args)}: exit {done.returncode}\n{output}")
        return done.returncode, output

    def in_container(self, script: str, stdin: str | None = None) -> str:
        flags = ["-i"] if stdin is not None else []
        done = self.machine.exec(
            ["docker", "exec", *flags, CONTAINER, "sh", "-c", script], input=stdin
        )
        return done.stdout

    def container_id(self) -> str:
        return self.machine.exec(
            ["docker", "inspect", "--format", "{{.Id}}", CONTAINER], check=False
        ).stdout.strip()

    def wait_panel(self, forward: PortForward, timeout: float = PANEL_UP_TIMEOUT) -> None:
        """Until the panel answers /healthz over HTTPS through ``forward``, its certificate
        verified against the one it made (LabError with the container's diagnostics when
        it does not)."""

        def answered() -> bool:
            return self.get_panel(forward.port).ok

        try:
            wait_for(answered, timeout, "the provisioning panel", 1.0)
        except TimeoutError as exc:
            raise LabError(f"{exc}\n{provisioning.diagnostics(self.machine)}") from None

    def panel_certificate(self, check: bool = True) -> str:
        """The panel's certificate (PEM) from the container's volume ("" before it is made)."""
        done = self.machine.exec(
            ["docker", "exec", CONTAINER, "sh", "-c", _PANEL_CERT], check=False
        )
        if "BEGIN CERTIFICATE" in done.stdout:
            return done.stdout
        if check:
            raise LabError(f"no panel certificate in the container: {done.stderr.strip()}")
        return ""

    def get_panel(self, port: int, path: str = "/healthz") -> requests.Response:
        """GET ``path`` from the panel through a loopback forward on ``port``, over HTTPS
        verified against the certificate the panel made (LabError before it made one)."""
        with tempfile.TemporaryDirectory(prefix="vulcano-panel-") as tmp:
            cert = self.save_panel_certificate(Path(tmp) / "panel.pem")
            return requests.get(f"https://127.0.0.1:{port}{path}", timeout=5, verify=str(cert))

    def save_panel_certificate(self, path: Path) -> Path:
        """The panel's certificate written to ``path``: what clients verify the panel with."""
        path.write_text(self.panel_certificate())
        return path

    def panel_fingerprint(self) -> str:
        """The certificate fingerprint the panel printed on its last start."""
        found = _FINGERPRINT.findall(provisioning.docker_logs(self.machine))
        if found:
            return str(found[-1])
        raise LabError("no certificate fingerprint in the container's log")

    def generated_password(self) -> str:
        """The admin password the panel made on its first start: printed once, to its log."""
        log = provisioning.docker_logs(self.machine)
        found = _PASSWORD.findall(log)
        if len(found) == 1:
            return str(found[0])
        raise LabError(f"no generated admin password in the container's log:\n{log}")


def panel_url(forward: PortForward) -> str:
    """The provisioning panel through ``forward``: HTTPS, as `vulcano serve` serves it;
    127.0.0.1 is among the names of the certificate it made."""
    return f"https://127.0.0.1:{forward.port}"


# --- the hosted installer's pages of one install ---------------------------------------


def set_alerts(installer_url: str, manage_token: str, emails: str, webhooks: str = "") -> None:
    """Alerts to ``emails`` and ``webhooks``, saved through the install's manage page."""
    timeout = policy.INSTALLER_REQUEST_TIMEOUT
    with requests.Session() as http:
        page = http.get(f"{installer_url}/installs/{manage_token}", timeout=timeout)
        csrf = _CSRF.search(page.text)
        if csrf is None:
            raise LabError(f"the manage page has no csrf_token:\n{page.text[:2000]}")
        saved = http.post(
            f"{installer_url}/installs/{manage_token}/alerts",
            data={"csrf_token": csrf.group(1), "emails": emails, "webhooks": webhooks},
            timeout=timeout,
        )
        if saved.status_code >= 400:
            raise LabError(f"saving the alerts failed ({saved.status_code}):\n{saved.text[:2000]}")


def status_url(installer_url: str, manage_token: str) -> str:
    """The install's hosted status page (its read-token URL), as its manage page links it."""
    install = requests.get(
        f"{installer_url}/installs/{manage_token}", timeout=policy.INSTALLER_REQUEST_TIMEOUT
    )
    link = _STATUS_LINK.search(install.text)
    if link is None:
        raise LabError(f"the manage page links no status page:\n{install.text[:2000]}")
    url = link.group(1)
    if url.startswith("http"):  # named for the host that asked; read it on loopback
        url = "/" + url.split("/", 3)[3]
    return installer_url + url


def status_page(installer_url: str, manage_token: str) -> str:
    return requests.get(
        status_url(installer_url, manage_token), timeout=policy.INSTALLER_REQUEST_TIMEOUT
    ).text


def status_count(page: str, which: str) -> int:
    """Machines ``up``, ``late`` or ``down`` on a status page (-1: not shown)."""
    found = re.search(rf'id="count-{which}">(\d+)<', page)
    return int(found.group(1)) if found else -1


def cluster_state(page: str) -> str:
    """reporting, late, unreachable or never-reported, as the status page shows it."""
    found = _CLUSTER_STATE.search(page)
    return found.group(1) if found else ""
