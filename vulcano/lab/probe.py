"""Reachability probes run inside sandboxes: a TCP echo server and an ICMP/TCP prober.

    python -m vulcano.lab.probe serve PORT            # echo server until killed
    python -m vulcano.lab.probe check PORT IP [IP..]  # prints JSON {ip: {"icmp": ok, "tcp": ok}}

The prober checks every target at once (one process per source sandbox), so a full mesh
of 50 sandboxes costs 50 processes, not 2,450.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import socketserver
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

PROBE_TIMEOUT = 3.0  # one ICMP or TCP probe
ICMP_RESEND = 0.5


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(4096)
        self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256  # many probers at once: a full backlog drops SYNs


def serve(port: int) -> None:
    with _Server(("0.0.0.0", port), _Echo) as server:
        server.serve_forever()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp(targets: list[str], timeout: float = PROBE_TIMEOUT) -> dict[str, bool]:
    """Echo requests to each target (resent every ICMP_RESEND until it answers or time runs
    out, as ping does); which answered. One lost packet is not lost connectivity."""
    ident = os.getpid() & 0xFFFF
    answered = dict.fromkeys(targets, False)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        deadline = time.monotonic() + timeout
        seq = 0
        while not all(answered.values()):
            for ip in [t for t, ok in answered.items() if not ok]:
                seq = (seq + 1) & 0xFFFF
                header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
                payload = b"vulcano-probe"
                checksum = _checksum(header + payload)
                packet = struct.pack("!BBHHH", 8, 0, checksum, ident, seq) + payload
                with contextlib.suppress(OSError):
                    sock.sendto(packet, (ip, 0))
            resend = min(deadline, time.monotonic() + ICMP_RESEND)
            while not all(answered.values()):
                left = resend - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    break
                data, (src, _) = sock.recvfrom(2048)
                ihl = (data[0] & 0x0F) * 4
                kind, _code, _sum, rid, _seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if kind == 0 and rid == ident and src in answered:
                    answered[src] = True
            if time.monotonic() >= deadline:
                break
    return answered


def tcp(ip: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    message = f"hello {ip}".encode()
    try:
        with socket.create_connection((ip, port), timeout=timeout) as conn:
            conn.sendall(message)
            received = b""
            while len(received) < len(message):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
            return received == message
    except OSError:
        return False


def check(port: int, targets: list[str]) -> dict[str, dict[str, bool]]:
    pings = icmp(targets)
    with ThreadPoolExecutor(max_workers=16) as pool:
        tcps = dict(zip(targets, pool.map(lambda ip: tcp(ip, port), targets), strict=True))
    return {ip: {"icmp": pings[ip], "tcp": tcps[ip]} for ip in targets}


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "serve":
        serve(int(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        print(json.dumps(check(int(argv[1]), argv[2:])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
