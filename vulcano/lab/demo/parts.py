"""The demo's parts that every mode shares: ports, progress, what it shows, its units."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
CLUSTER = "demo"
# The `vulcano` the demo's own virtualenv installed (nox's, which is not on PATH).
VULCANO_CLI = os.path.relpath(Path(sys.executable).with_name("vulcano"))
ALERT_ADDRESS = "you@vulcano.demo"
PANEL_PORT_IN_MACHINE = 8080
SERVICE_PORT_IN_MACHINE = 80
MAX_MACHINES = 6
TICK = 15.0  # seconds between "still waiting" lines
PR_SET_PDEATHSIG = 1
MACHINE_BOOT_TIMEOUT = 300.0
CLUSTER_FORM_TIMEOUT = 180.0
UNITS_TIMEOUT = 180.0
STATUS_TIMEOUT = 180.0

WEB_UNIT = """\
[Unit]
Description=Vulcano demo web server %i

[Service]
ExecStartPre=/bin/sh -c 'mkdir -p /run/web-%i && echo "web %i on %H" > /run/web-%i/index.html'
ExecStart=/usr/bin/python3 -m http.server --bind 0.0.0.0 --directory /run/web-%i 8080

[X-Vulcano]
Sandbox=true
Port=8080
Check=http :8080/ interval=2s timeout=1s failing=2
"""
BALANCER_UNIT = """\
[Unit]
Description=Vulcano demo balancer in front of web@

[Service]
ExecStart=/opt/vulcano/bin/vulcano-agent balancer --config /etc/vulcano/agent.toml \\
  --for web@ --listen :80 --kind nginx --state-dir /run/vulcano-balancer
Restart=always

[X-Fleet]
Global=true
"""
HELLO_UNIT = """\
[Unit]
Description=says hello every ten seconds

[Service]
ExecStart=/bin/sh -c 'while :; do echo hello from %H; sleep 10; done'
"""


class DemoError(Exception):
    """What stops the demo from starting, said plainly."""


class Stopping(BaseException):
    """A signal asked the demo to stop (raised once, in the main thread)."""


# --- progress -------------------------------------------------------------------------


class Progress:
    """Says what the demo waits for, for how long, and how long it took."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def step(self, what: str, up_to: float | None = None) -> Iterator[None]:
        limit = f" (up to {up_to:.0f} s)" if up_to else ""
        self.say(f"… {what}{limit}")
        began = time.monotonic()
        done = threading.Event()

        def tick() -> None:
            while not done.wait(TICK):
                self.say(f"    still {what}: {time.monotonic() - began:.0f} s so far")

        ticker = threading.Thread(target=tick, name="demo-progress", daemon=True)
        ticker.start()
        try:
            yield
        except BaseException:
            self.say(f"    stopped {what} after {time.monotonic() - began:.1f} s")
            raise
        finally:
            done.set()
            ticker.join()
        self.say(f"    done in {time.monotonic() - began:.1f} s")


# --- ports and prerequisites ----------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    installer: int
    panel: int
    service: int
    mail: int

    def named(self) -> list[tuple[int, str, str]]:
        return [
            (self.installer, "the installer", "--port"),
            (self.panel, "the provisioning panel", "--panel-port"),
            (self.service, "the balanced web service", "--service-port"),
            (self.mail, "the mail sink's page", "--mail-port"),
        ]


def check_ports(ports: Ports) -> None:
    """DemoError naming the first port that is taken (or given twice), and its option."""
    seen: dict[int, str] = {}
    for port, what, option in ports.named():
        if port in seen:
            raise DemoError(
                f"port {port} is given to both {seen[port]} and {what}; pick another with {option}"
            )
        seen[port] = what
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on 127.0.0.1 ({what}) is in use ({exc.strerror}); "
                    f"pick another with {option} N"
                ) from None


def machines_possible() -> str:
    """Why machines cannot be booted here ('' when they can)."""
    if os.geteuid() != 0:
        return "not running as root (machines need network namespaces and privileged podman)"
    for tool, package in (("podman", "podman"), ("runc", "runc"), ("mmdebstrap", "mmdebstrap")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    return ""


def die_with_parent() -> None:
    """When the command that started the demo (nox) dies, the kernel sends us SIGTERM."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent went before we asked
            os.kill(os.getpid(), signal.SIGTERM)


# --- what the demo shows --------------------------------------------------------------


@dataclass
class Shown:
    """What the demo prints (and, headless, its JSON)."""

    installer: str = ""
    manage: str = ""
    status_page: str = ""
    panel: str = ""
    panel_password: str = ""
    panel_fingerprint: str = ""  # its certificate's SHA-256, as the install page shows it
    panel_certificate: str = ""  # a copy of that certificate, for clients to verify with
    service: str | None = None
    heartbeat: str = ""
    etcd: list[str] = field(default_factory=list)
    # the CA bundle and a client certificate etcd admits (the cluster is on mutual TLS)
    etcd_client: dict[str, str] = field(default_factory=dict)
    mail: str = ""
    machines: list[dict[str, str]] = field(default_factory=list)
    mode: str = "full"
    notes: list[str] = field(default_factory=list)
    try_commands: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(
            {
                "installer": self.installer,
                "manage": self.manage,
                "status_page": self.status_page,
                "panel": self.panel,
                "panel_password": self.panel_password,
                "panel_fingerprint": self.panel_fingerprint,
                "panel_certificate": self.panel_certificate,
                "service": self.service,
                "heartbeat": self.heartbeat,
                "etcd": self.etcd,
                "etcd_client": self.etcd_client,
                "mail": self.mail,
                "machines": self.machines,
                "mode": self.mode,
            },
            sort_keys=True,
        )

    def as_text(self) -> str:
        lines = [
            "",
            "Vulcano is up." if self.mode == "full" else "Vulcano is up (reduced: no machines).",
            f"  installer            {self.installer}/",
            f"  your install         {self.manage}",
            f"  its status page      {self.status_page}",
            f"  provisioning panel   {self.panel}/   password: {self.panel_password}",
            f"  panel certificate    SHA-256 {self.panel_fingerprint}",
            "                       (self-signed: compare it with your browser's certificate "
            "view and the install page)",
        ]
        if self.service:
            lines.append(f"  web@ x3, balanced    {self.service}/")
        lines += [
            f"  alert mail           {self.mail}",
            f"  etcd                 {', '.join(self.etcd)}",
        ]
        if self.machines:
            lines.append("  machines             " + ", ".join(
                f"{m['hostname']} ({m['name']})" for m in self.machines
            ))  # fmt: skip
        lines += ["", *[f"  note: {n}" for n in self.notes]]
        if self.try_commands:
            lines += ["", "Try:", *[f"  {c}" for c in self.try_commands]]
        lines += ["", "Ctrl-C stops everything the demo started.", ""]
        return "\n".join(lines)


def step(progress: Progress, what: str, up_to: float, call: Callable[[], T]) -> T:
    with progress.step(what, up_to):
        return call()


def emulator_and_mail(
    stack: contextlib.ExitStack, progress: Progress, shown: Shown, mail_port: int
) -> tuple[Any, dict[str, str]]:
    """The Datastore emulator, and the mail sink with its page (``shown.mail``); the
    installer's environment for them."""
    from vulcano.lab import services
    from vulcano.lab.mailsink import smtp_sink

    emulator = step(
        progress, "starting the Cloud Datastore emulator", 120,
        lambda: stack.enter_context(services.datastore_emulator(project="vulcano-demo")),
    )  # fmt: skip
    mail = stack.enter_context(smtp_sink())
    shown.mail = stack.enter_context(mail.web(port=mail_port))
    env = {
        "VULCANO_SMTP_HOST": "127.0.0.1",
        "VULCANO_SMTP_PORT": str(mail.port),
        "VULCANO_SMTP_FROM": "alerts@vulcano.demo",
        "VULCANO_ALERT_WEBHOOK_ALLOW_PRIVATE": "1",
        "VULCANO_EPHEMERAL": "1",  # the pages say the emulator keeps installs in memory
    }
    return emulator, env
