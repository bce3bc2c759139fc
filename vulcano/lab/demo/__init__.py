"""The demo: the whole of Vulcano on this machine, in one command (`nox -s demo`).

As root with podman it brings up, each piece real and each step shown while it waits:
the Cloud Datastore emulator and the hosted installer; an install made through the
installer's own form; a local mail sink with a page (the install's alerts go there); the
provisioning machine, booted from the install's user-data, running the Vulcano image;
a cluster created by its container, and N machines (default 3) booted from the node
user-data it made, forming etcd through the installer's discovery service; the overlay;
``web@.service`` x3 behind a balancer (``vulcano-agent balancer``, a Global unit); and
heartbeats on the install's hosted status page. Then it prints the URLs and commands to
try, and runs until Ctrl-C or SIGTERM, when everything it started goes: machines,
namespaces, forwards, processes, its temporary directory.

``--headless`` prints one line of JSON on stdout once everything is up (progress goes to
stderr), then keeps running. Without root or podman it says so and runs what it can:
the installer, the panel and one local agent (no overlay, no machines).

Every port is checked before anything starts; a port in use is named with the option
that picks another. Servers are handed sockets this process bound, so readiness is
always this run's own server answering.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from vulcano.lab.demo.parts import (
    MAX_MACHINES,
    DemoError,
    Ports,
    Progress,
    Stopping,
    check_ports,
    die_with_parent,
    machines_possible,
)  # fmt: skip
from vulcano.lab.errors import LabError

# --- main -----------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vulcano.lab.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, default=8080, help="the installer's port (8080)")
    parser.add_argument("--panel-port", type=int, default=8081, help="the panel's port (8081)")
    parser.add_argument(
        "--service-port", type=int, default=8082, help="the balanced web service's port (8082)"
    )
    parser.add_argument("--mail-port", type=int, default=8025, help="the mail page's port (8025)")
    parser.add_argument(
        "--machines", type=int, default=3, help=f"cluster machines, 1-{MAX_MACHINES} (3)"
    )
    parser.add_argument(
        "--no-machines", action="store_true",
        help="run only what needs neither root nor podman: installer, panel, one local agent",
    )  # fmt: skip
    parser.add_argument(
        "--headless", action="store_true",
        help="print one line of JSON on stdout when everything is up (progress on stderr)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.machines <= MAX_MACHINES:
        parser.error(f"--machines must be from 1 to {MAX_MACHINES}")
    for option in ("port", "panel_port", "service_port", "mail_port"):
        if not 1 <= getattr(args, option) <= 65535:
            parser.error(f"--{option.replace('_', '-')} must be a port from 1 to 65535")
    args.ports = Ports(args.port, args.panel_port, args.service_port, args.mail_port)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    progress = Progress(sys.stderr if args.headless else sys.stdout)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            progress.say("still stopping; it takes a few seconds")
            return
        stopping.set()
        raise Stopping(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    die_with_parent()
    try:
        check_ports(args.ports)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    why = "--no-machines was given" if args.no_machines else machines_possible()
    if why:
        progress.say(
            f"demo: {why}; running what needs neither: the installer, the panel and one local agent"
        )
    code = 0
    tmp = Path(tempfile.mkdtemp(prefix="vulcano-demo-"))
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, tmp, True)
            try:
                if why:
                    from vulcano.lab.demo.reduced import bring_up_reduced

                    shown = bring_up_reduced(stack, args, progress, tmp, why)
                else:
                    from vulcano.lab.demo.machines import bring_up_machines

                    shown = bring_up_machines(stack, args, progress, tmp)
                progress.say(shown.as_text())
                if args.headless:
                    print(shown.as_json(), flush=True)
                progress.say(f"up after {time.monotonic() - progress.started:.0f} s")
                while True:
                    signal.pause()
            except Stopping as why_stop:
                progress.say(f"\n{why_stop}: stopping everything the demo started…")
            except (DemoError, LabError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                stopping.set()
                progress.say(f"demo: {exc}\nstopping everything the demo started…")
                code = 1
            stopping.set()
    except Stopping:
        pass  # a signal during the bring-up's own cleanup: the stack unwound all the same
    progress.say("stopped; nothing is left running")
    return code
