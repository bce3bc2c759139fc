"""Real OpenSSH sshd for tests and benchmarks: on a loopback port, or inside a test host.

    with sshd_server(tmp_path / "a", authorized=[pubkey_line]) as server:
        server.port, server.host_key_lines(), server.fingerprints()

Each server has its own directory holding its generated host keys (ed25519 and ecdsa,
so host-key type negotiation is exercised), its config, its authorized_keys and its
log. It runs `sshd -D -e -f <config>` in the foreground, as the user running the tests
(root in CI: logins as root with a key). `stop()` ends exactly the process it started,
by its id. `swap_host_keys()` restarts it on the same address with new host keys, as a
rebuilt machine would come back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import stop_process

SSHD = "/usr/sbin/sshd"
HOST_KEY_TYPES = ("ed25519", "ecdsa")
START_TIMEOUT = 15.0
# Debian's sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def keygen(path: Path, key_type: str = "ed25519", comment: str = "") -> str:
    """A new key pair at ``path`` (and ``path``.pub), no passphrase; the public line."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def fingerprint_of(pub_path: Path) -> str:
    """The key's SHA256 fingerprint as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return out.split()[1]


@dataclass
class Sshd:
    """One sshd: its directory, address and process."""

    base: Path
    host: str = "127.0.0.1"
    port: int = 0
    launcher: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)  # more sshd_config lines
    _log_start: int = 0  # where this run's lines begin in the log

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base / "sshd_config"

    @property
    def authorized_keys(self) -> Path:
        return self.base / "authorized_keys"

    @property
    def log_path(self) -> Path:
        return self.base / "sshd.log"

    def host_key_path(self, key_type: str) -> Path:
        return self.base / f"ssh_host_{key_type}_key"

    def make_host_keys(self) -> None:
        for key_type in HOST_KEY_TYPES:
            keygen(self.host_key_path(key_type), key_type, f"host-{key_type}")

    def host_key_lines(self) -> list[str]:
        """The public host keys, as ``type base64`` lines (no comment)."""
        lines = []
        for key_type in HOST_KEY_TYPES:
            pub = self.host_key_path(key_type).with_suffix(".pub").read_text().split()
            lines.append(f"{pub[0]} {pub[1]}")
        return lines

    def fingerprints(self) -> dict[str, str]:
        """Key type ("ed25519", ...) → SHA256 fingerprint, as ssh-keygen prints it."""
        return {
            t: fingerprint_of(self.host_key_path(t).with_suffix(".pub")) for t in HOST_KEY_TYPES
        }

    def write_config(self, extra: Sequence[str] = ()) -> None:
        # sshd keeps a keyword's first value: ``extra`` comes first to override ours
        lines = [
            *extra,
            f"ListenAddress {self.host}:{self.port}",
            *(f"HostKey {self.host_key_path(t)}" for t in HOST_KEY_TYPES),
            f"PidFile {self.base / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AllowTcpForwarding yes",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "UseDNS no",
            "MaxStartups 200:30:300",
            "LogLevel VERBOSE",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def authorize(self, *lines: str) -> None:
        with self.authorized_keys.open("a") as f:
            for line in lines:
                f.write(line.strip() + "\n")

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*self.launcher, SSHD, "-D", "-e", "-f", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for(self._listening, START_TIMEOUT, f"sshd on {self.host}:{self.port}")

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({self.proc.returncode}):\n{self.log()}")
        # bytes: sshd ends its lines with \r\n, which text mode would count as one
        return b"Server listening" in self.log_path.read_bytes()[self._log_start :]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def swap_host_keys(self) -> None:
        """New host keys under the same address, as a rebuilt machine comes back."""
        self.stop()
        self.make_host_keys()
        self.write_config(self.extra)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def new_sshd(
    base: Path,
    authorized: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
    extra: Sequence[str] = (),
) -> Sshd:
    """An sshd (not started yet) with fresh host keys, on ``port`` or a free one of ``host``.

    ``extra`` are more sshd_config lines (``SetEnv NAME=value``, say).
    """
    base.mkdir(parents=True, exist_ok=True)
    server = Sshd(base=base, host=host, port=port or reserve_port(host))
    server.make_host_keys()
    server.authorized_keys.write_text("")
    server.authorize(*authorized)
    server.write_config(extra)
    server.extra = list(extra)
    return server


@contextlib.contextmanager
def sshd_server(
    base: Path, authorized: Sequence[str] = (), host: str = "127.0.0.1", extra: Sequence[str] = ()
) -> Iterator[Sshd]:
    """One sshd on a loopback address, stopped afterwards."""
    server = new_sshd(base, authorized, host, extra=extra)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def sshd_servers(
    base: Path, hosts: Sequence[str], authorized: Sequence[str] = ()
) -> Iterator[list[Sshd]]:
    """One sshd per loopback address in ``hosts`` (repeats allowed: each gets its own
    port), each with its own host keys and ``SetEnv VULCANO_TEST_HOST=<index>``; all
    stopped afterwards."""
    servers: list[Sshd] = []
    try:
        for i, host in enumerate(hosts):
            server = new_sshd(
                base / f"sshd{i}", authorized, host, extra=[f"SetEnv VULCANO_TEST_HOST={i}"]
            )
            servers.append(server)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def sshd_in_namespace(
    base: Path, nsenter: Sequence[str], host: str, authorized: Sequence[str] = (), port: int = 22
) -> Iterator[Sshd]:
    """One sshd listening on ``host:port`` inside a test host's namespace.

    ``nsenter`` is the host's launcher prefix (`TestHost.nsenter([])`).
    """
    server = new_sshd(base, authorized, host=host, port=port)
    server.launcher = list(nsenter)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def free_closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on (for "unreachable host" tests)."""
    port = reserve_port(host)
    with socket.socket() as s:
        assert s.connect_ex((host, port)) != 0
    return port
