"""Real services for tests, benchmarks and the demo: started on loopback, always stopped.

Each launcher is a context manager that starts the real program (never a fake), waits
until it answers, yields a handle, and stops exactly the process it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from vulcano.lab.etcdtls import EtcdTLS as EtcdTLS  # the lab's etcd TLS mode
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

DATASTORE_EMULATOR_DIRS = [
    "/usr/lib/google-cloud-sdk/platform/cloud-datastore-emulator",
    "/usr/share/google-cloud-sdk/platform/cloud-datastore-emulator",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process this module started (and its process group), by its id."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


# --- Cloud Datastore emulator -------------------------------------------------------


def datastore_emulator_launcher() -> str:
    for d in DATASTORE_EMULATOR_DIRS:
        exe = os.path.join(d, "cloud_datastore_emulator")
        if os.path.exists(exe):
            return exe
    gcloud = shutil.which("gcloud")
    if gcloud:
        root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        exe = os.path.join(root, "platform", "cloud-datastore-emulator", "cloud_datastore_emulator")
        if os.path.exists(exe):
            return exe
    raise FileNotFoundError(
        "Cloud Datastore emulator not found: install google-cloud-cli-datastore-emulator"
    )


@dataclass
class DatastoreEmulator:
    host: str  # "127.0.0.1:PORT", the value of DATASTORE_EMULATOR_HOST
    project: str

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reset(self) -> None:
        requests.post(f"{self.url}/reset", timeout=10).raise_for_status()

    def env(self) -> dict[str, str]:
        return {
            "DATASTORE_EMULATOR_HOST": self.host,
            "DATASTORE_PROJECT_ID": self.project,
            "DATASTORE_DATASET": self.project,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }


@contextlib.contextmanager
def datastore_emulator(project: str = "vulcano-test") -> Iterator[DatastoreEmulator]:
    """The real Cloud Datastore emulator, strongly consistent, in memory."""
    port = reserve_port()
    with tempfile.TemporaryDirectory(prefix="vulcano-dsemu-") as data:
        proc = subprocess.Popen(
            [
                datastore_emulator_launcher(),
                "start",
                "--host=127.0.0.1",
                f"--port={port}",
                "--consistency=1.0",
                "--store_on_disk=false",
                "--testing",  # start has no --project_id; any project id is served
                data,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        emu = DatastoreEmulator(host=f"127.0.0.1:{port}", project=project)
        try:
            wait_for(lambda: requests.get(emu.url, timeout=1).ok, 60, "Datastore emulator")
            yield emu
        finally:
            stop_process(proc)


# --- etcd ---------------------------------------------------------------------------


@dataclass
class Etcd:
    """One real etcd 3.4 member: on loopback, or inside a network namespace.

    ``launcher`` prefixes etcd's command line (``nsenter --net=…`` to run it inside a
    namespace); ``endpoint`` is where the test process itself reaches it (a loopback
    forward, when ``client_url`` is an address inside a namespace).
    """

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    launcher: list[str] = field(default_factory=list)
    local_url: str | None = None
    tls: EtcdTLS | None = None  # then every URL is https:// and client certs are required

    @property
    def endpoint(self) -> str:
        return self.local_url or self.client_url

    @property
    def host_port(self) -> tuple[str, int]:
        hostport = self.endpoint.split("//", 1)[1]
        host, port = hostport.rsplit(":", 1)
        return host, int(port)

    def start(self) -> None:
        """Start (or restart) this member with the same name and data dir."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log_path = self.data_dir.with_suffix(".log")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                *self.launcher,
                "etcd",
                "--name",
                self.name,
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                self.client_url,
                "--advertise-client-urls",
                self.client_url,
                "--listen-peer-urls",
                self.peer_url,
                "--initial-advertise-peer-urls",
                self.peer_url,
                *self._bootstrap_args(),
                *self._tls_args(),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _bootstrap_args(self) -> list[str]:
        joined = " ".join(self.extra_args)
        if "--discovery" in joined or "--initial-cluster" in joined:
            return []
        return ["--initial-cluster", f"{self.name}={self.peer_url}"]

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        host = urlsplit(self.client_url).hostname or "127.0.0.1"
        # a loopback forward into a namespace is dialled at 127.0.0.1: named too
        local = urlsplit(self.local_url).hostname if self.local_url else None
        also = [local] if local and local != host else []
        cert, key = self.tls.issue(f"{self.name}-server", "server", host, *also)
        peer_cert, peer_key = self.tls.issue(f"{self.name}-peer", "peer", host)
        return [
            "--client-cert-auth",
            f"--trusted-ca-file={self.tls.cacert}",
            f"--cert-file={cert}",
            f"--key-file={key}",
            "--peer-client-cert-auth",
            f"--peer-trusted-ca-file={self.tls.cacert}",
            f"--peer-cert-file={peer_cert}",
            f"--peer-key-file={peer_key}",
        ]

    def http_args(self) -> dict[str, Any]:
        """`requests` keyword arguments for this member's HTTP endpoints."""
        return self.tls.requests_args() if self.tls is not None else {}

    def wait_healthy(self, timeout: float = 30) -> None:
        wait_for(
            lambda: (
                requests.get(f"{self.endpoint}/health", timeout=1, **self.http_args())
                .json()
                .get("health")
                == "true"
            ),
            timeout,
            f"etcd {self.name}",
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def new_etcd(
    base: Path,
    name: str = "default",
    host: str = "127.0.0.1",
    extra_args: list[str] | None = None,
    tls: EtcdTLS | None = None,
) -> Etcd:
    """A member (not started yet) on ports below the ephemeral range (`ports.reserve_port`);
    with ``tls``, on https:// URLs requiring client and peer certificates of its CA."""
    scheme = "https" if tls is not None else "http"
    return Etcd(
        name=name,
        client_url=f"{scheme}://{host}:{reserve_port(host)}",
        peer_url=f"{scheme}://{host}:{reserve_port(host)}",
        data_dir=base / name,
        extra_args=list(extra_args or []),
        tls=tls,
    )


@contextlib.contextmanager
def etcd_server(base: Path | None = None, *, tls: bool = False) -> Iterator[Etcd]:
    """A single-member etcd 3.4 on loopback ports, removed afterwards; with ``tls``, its
    own test CA (`Etcd.tls`) and mutual TLS."""
    with contextlib.ExitStack() as stack:
        if base is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vulcano-etcd-")))
        member = new_etcd(base, tls=EtcdTLS.make(base / "tls") if tls else None)
        member.start()
        stack.callback(member.stop)
        member.wait_healthy()
        yield member


@dataclass
class EtcdCluster:
    """Real etcd 3.4 members joined by a static ``--initial-cluster``, on loopback."""

    members: list[Etcd]

    @property
    def tls(self) -> EtcdTLS | None:
        return self.members[0].tls

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated (as --etcd-endpoints takes them)."""
        return ",".join(m.endpoint for m in self.members)

    def running(self) -> list[Etcd]:
        return [m for m in self.members if m.proc is not None and m.proc.poll() is None]

    def member_id(self, member: Etcd) -> int:
        header = _status(member)["header"]
        assert isinstance(header, dict)
        return int(header["member_id"])

    def leader(self) -> Etcd:
        """The member the running ones agree leads (waits out an election)."""

        def agreed() -> Etcd | None:
            seen = set()
            for m in self.running():
                try:
                    seen.add(int(str(_status(m).get("leader", 0))))
                except (requests.RequestException, ValueError):
                    return None  # between leaders, or not answering yet
            if len(seen) != 1 or 0 in seen:
                return None
            [leader_id] = seen
            return next((m for m in self.running() if self.member_id(m) == leader_id), None)

        found = wait_for(agreed, 30, "one etcd leader")
        assert found is not None  # wait_for returns only a truthy value
        return found

    def move_leader(self, to: Etcd) -> None:
        """Hand leadership to ``to`` with ``etcdctl move-leader`` (sent to the leader)."""
        leader = self.leader()
        subprocess.run(
            [
                "etcdctl",
                "--endpoints",
                leader.endpoint,
                *(leader.tls.etcdctl_args() if leader.tls else []),
                "move-leader",
                f"{self.member_id(to):x}",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
            timeout=30,
        )
        wait_for(lambda: self.leader() is to, 30, f"etcd leader moved to {to.name}")


def _status(member: Etcd) -> dict[str, object]:
    """A member's own status through etcd's HTTP gateway (header.member_id, leader)."""
    response = requests.post(
        f"{member.endpoint}/v3/maintenance/status",
        json={},
        timeout=2,
        **member.http_args(),
    )
    response.raise_for_status()
    body: dict[str, object] = response.json()
    return body


@contextlib.contextmanager
def etcd_cluster(base: Path, size: int = 3, *, tls: bool = False) -> Iterator[EtcdCluster]:
    """``size`` etcd members on loopback in one static cluster, each stopped afterwards;
    with ``tls``, sharing one test CA and requiring client and peer certificates."""
    authority = EtcdTLS.make(base / "tls") if tls else None
    members = [new_etcd(base, name=f"member{i}", tls=authority) for i in range(size)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for m in members:
        m.extra_args = [
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            base.name,
        ]
    with contextlib.ExitStack() as stack:
        for m in members:
            m.start()
            stack.callback(m.stop)
        for m in members:
            m.wait_healthy()
        cluster = EtcdCluster(members)
        cluster.leader()
        yield cluster
