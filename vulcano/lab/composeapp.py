"""The web + redis app the Compose tests run: one local image with redis-server and a
tiny Python web server that counts its hits in redis.

    image = build_app_image()        # localhost/vulcano-compose-app:<digest>

The web server (``/app/web.py PORT``) answers every GET with ``<hits> <hostname>``: it
sends redis ``INCR hits`` as a raw RESP command over a socket to ``$REDIS_HOST:6379``,
so a counter that grows across replicas proves they share the one redis.
"""

from __future__ import annotations

from vulcano.lab import rootfs
from vulcano.lab.podman import Podman, available

WEB_APP = """\
import os, signal, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

REDIS = (os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")))


def incr():
    with socket.create_connection(REDIS, timeout=5) as s:
        s.sendall(b"*2\\r\\n$4\\r\\nINCR\\r\\n$4\\r\\nhits\\r\\n")
        reply = b""
        while not reply.endswith(b"\\r\\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
    if not reply.startswith(b":"):
        raise RuntimeError(reply[:60])
    return int(reply[1:].strip())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body = f"{incr()} {socket.gethostname()}\\n".encode()
            self.send_response(200)
        except Exception as exc:
            body = f"redis: {exc}\\n".encode()
            self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores it otherwise
HTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
"""

APP = rootfs.Rootfs(
    name="vulcano-compose-app",
    packages=("python3", "redis-server"),
    hooks=(rootfs.write_file_hook("/app/web.py", WEB_APP),),
    changes=('CMD ["python3", "/app/web.py", "8000"]',),
)


def build_app_image(podman: Podman | None = None) -> str:
    """The app's image reference, built once per recipe (cached by its inputs)."""
    return rootfs.build(APP, podman or available()).reference
