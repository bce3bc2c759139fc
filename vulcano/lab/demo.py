"""The demo: the hosted installer on http://127.0.0.1:8080 against the Datastore emulator.

Run with `nox -s demo` (or `python -m vulcano.lab.demo [--port N]`); Ctrl-C stops
gunicorn and the emulator.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from vulcano.lab import services
from vulcano.lab.installer import installer_server


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="installer port (8080)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print("starting the Cloud Datastore emulator…", flush=True)
        with services.datastore_emulator(project="vulcano-demo") as emulator:
            print("starting the installer (gunicorn)…", flush=True)
            with installer_server(
                emulator, None, port=args.port, workers=1, threads=16, validate="auto"
            ) as server:
                print(f"\nVulcano installer: {server.url}/  (Ctrl-C to stop)\n", flush=True)
                server.proc.wait()
                print("the installer stopped", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
