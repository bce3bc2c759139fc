"""A full-mesh UDP prober run inside a sandbox: when did each peer first answer?

    python -m vulcano.lab.meshprobe PORT OWN_IP TARGETS_FILE RESULT_FILE

Answers every probe it receives, and probes every address listed in TARGETS_FILE (one
a line; re-read when it changes, so sandboxes made later join in) until each has
answered once. Each time a new peer answers it rewrites RESULT_FILE (atomically), JSON
``{ip: first answer, CLOCK_MONOTONIC seconds}``; it runs until killed. The monotonic
clock is the kernel's, the same in every network namespace, so the bench compares these
times with its own.

One process per sandbox: 50 sandboxes probe their 2,450 ordered pairs with 50 small
processes, and a pair's time is the first echo that crossed the overlay both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import sys
import time
from pathlib import Path

PROBE_INTERVAL = 0.05  # resend to peers that have not answered yet
_QUERY = b"q"
_REPLY = b"r"


def _targets(path: Path, own: str) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return [t for t in path.read_text().split() if t != own]
    return []


def _write(result_file: Path, answered: dict[str, float]) -> None:
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(answered))
    os.replace(tmp, result_file)


def run(port: int, own: str, targets_file: Path, result_file: Path) -> None:
    answered: dict[str, float] = {}
    stamp: float | None = None
    targets: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((own, port))
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= next_send:
                with contextlib.suppress(FileNotFoundError):
                    mtime = targets_file.stat().st_mtime
                    if mtime != stamp:
                        stamp, targets = mtime, _targets(targets_file, own)
                for ip in targets:
                    if ip not in answered:
                        with contextlib.suppress(OSError):  # no route yet, unreachable
                            sock.sendto(_QUERY, (ip, port))
                next_send = now + PROBE_INTERVAL
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
            before = len(answered)
            while ready:
                try:
                    data, (src, src_port) = sock.recvfrom(64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error from an earlier send
                    continue
                if data == _QUERY:
                    with contextlib.suppress(OSError):
                        sock.sendto(_REPLY, (src, src_port))
                elif data == _REPLY and src not in answered:
                    answered[src] = time.monotonic()
            if len(answered) != before:
                _write(result_file, answered)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, own, targets, result = argv
    run(int(port), own, Path(targets), Path(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
