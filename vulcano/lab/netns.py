"""Test hosts: network namespaces on one underlay, each able to run its own agent.

    with Underlay(tmp_path) as net:                 # its namespace: bridge + a real etcd
        hosts = net.add_hosts(3)
        net.init_network("10.244.0.0/16", 24)
        for h in hosts:
            h.start_agent("--ttl", "3")
        for h in hosts:
            h.wait_overlay()
        ip = hosts[0].create_sandbox("a")           # the name gets the run's token
        hosts[0].in_sandbox("a", ["python3", "-c", "..."])

Every namespace, bridge and veth name carries a random per-run token, so parallel test
runs on one machine never collide. The underlay is a namespace of its own (bridge,
gateway address, etcd); the root namespace gets no test-network address and reaches
etcd through a loopback forward (`etcd_local_endpoint`). `close()` (the context exit)
kills every agent it started (by pid), deletes every namespace it made (their links go
with them), and stops its etcd, even after a failure. Agents run in their host's
namespace through `nsenter --net=...` (see agent/overlay/sandboxes.py for why
not `ip netns exec`). With ``tls`` (a `services.EtcdTLS`) the underlay's etcd is on
https:// and admits only clients with a certificate of that CA: the test gives each
agent its own (``--cacert``, ``--cert``, ``--key`` as extra arguments).

`Underlay` and `TestHost` are kept as one module, past 400 lines: they are two halves
of one test network (a host plugs into its underlay's bridge and reaches its etcd; the
underlay makes, tracks and removes its hosts).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vulcano.lab import services
from vulcano.lab.forward import PortForward, entered
from vulcano.lab.poll import wait_for

REPO = Path(__file__).resolve().parents[2]
NETNS_DIR = Path("/run/netns")
# Inside the underlay's own namespace: its bridge, and etcd's usual ports.
BRIDGE = "br0"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ECHO_PORT = 7777
COMMAND_TIMEOUT = 30.0


def _run(
    argv: Sequence[str], check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", COMMAND_TIMEOUT)
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, **kwargs)


def _pick_underlay_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.200-243/16 (the underlay is a namespace of its own: any will do)."""
    return ipaddress.IPv4Network(f"10.{random.randint(200, 243)}.{random.randint(0, 255)}.0/24")


class AgentProcess:
    """One `vulcano-agent run` started on a test host."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, started: float) -> None:
        self.proc = proc
        self.log_path = log
        self.started = started  # wall clock, to tell its files from a previous run's

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        services.stop_process(self.proc, timeout)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return int(self.proc.wait(timeout))


class TestHost:
    """A network namespace with one underlay address, a state dir and maybe an agent."""

    __test__ = False  # not a pytest test class

    def __init__(self, underlay: Underlay, index: int) -> None:
        self.underlay = underlay
        self.index = index
        self.netns = f"vh{underlay.token}{index}"
        self.veth = f"vu{underlay.token}h{index}"
        self.ip = str(underlay.subnet.network_address + index + 2)
        self.machine_id = f"host{index}-{underlay.token}"
        self.state_dir = underlay.base / f"host{index}"
        self.agent: AgentProcess | None = None
        self._agent_logs = 0
        self.sandboxes: dict[str, str] = {}  # short name → overlay address
        self._echo: dict[str, subprocess.Popen[bytes]] = {}

    # -- plumbing ------------------------------------------------------------------------
    def create(self) -> None:
        """The namespace, and a veth from its eth0 to a port of the underlay's bridge."""
        _run(["ip", "netns", "add", self.netns])
        switch = self.underlay.netns
        _run(
            [
                "ip",
                "-n",
                switch,
                "link",
                "add",
                self.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.netns,
            ]
        )
        _run(["ip", "-n", switch, "link", "set", self.veth, "master", BRIDGE, "up"])
        self.exec(
            ["ip", "addr", "add", f"{self.ip}/{self.underlay.subnet.prefixlen}", "dev", "eth0"]
        )
        self.exec(["ip", "link", "set", "eth0", "up"])
        self.exec(["ip", "link", "set", "lo", "up"])

    def forward(self, port: int) -> PortForward:
        """127.0.0.1:<some port> in the root namespace → this host's ``ip:port``."""
        return PortForward(NETNS_DIR / self.netns, self.ip, port)

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", *argv]

    def exec(
        self, argv: Sequence[str], check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in this host's network namespace."""
        return _run(self.nsenter(argv), check=check, **kwargs)

    def cli(
        self, *args: str, check: bool = False, state_dir: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`vulcano-agent ARGS [--state-dir]` in this host's namespace."""
        extra = ["--state-dir", str(self.state_dir)] if state_dir else []
        return self.exec(
            [sys.executable, "-m", "agent", *args, *extra], check=check, cwd=REPO, env=_env()
        )

    # -- agent ---------------------------------------------------------------------------
    def agent_args(self, *extra: str, ttl: int = 3, subnet_ttl: int = 6) -> list[str]:
        return [
            sys.executable,
            "-m",
            "agent",
            "run",
            "--etcd-endpoints",
            self.underlay.etcd_endpoint,
            "--public-ip",
            self.ip,
            "--machine-id",
            self.machine_id,
            "--state-dir",
            str(self.state_dir),
            "--ttl",
            str(ttl),
            "--subnet-ttl",
            str(subnet_ttl),
            *extra,
        ]

    def start_agent(
        self, *extra: str, ttl: int = 3, subnet_ttl: int = 6, hostname: str | None = None
    ) -> AgentProcess:
        """Start `vulcano-agent run` in this host (extra CLI args appended); with
        ``hostname``, in a UTS namespace of its own with that name (what its machine
        record names, as a node's hostname is its name)."""
        assert self.agent is None or not self.agent.running(), "agent already running"
        self._agent_logs += 1
        log = self.underlay.base / f"agent-{self.index}-{self._agent_logs}.log"
        started = time.time()
        argv = self.nsenter(self.agent_args(*extra, ttl=ttl, subnet_ttl=subnet_ttl))
        if hostname is not None:  # unshare and sh exec: the agent keeps the first pid
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=_env(),
                start_new_session=True,
            )
        self.agent = AgentProcess(proc, log, started)
        return self.agent

    def stop_agent(self) -> int | None:
        if self.agent is None:
            return None
        return self.agent.terminate()

    def kill_agent(self) -> None:
        if self.agent is not None:
            self.agent.kill()

    @property
    def subnet_env(self) -> Path:
        return self.state_dir / "subnet.env"

    def wait_overlay(self, timeout: float = 30.0) -> dict[str, str]:
        """Wait until the running agent (re)wrote subnet.env; its variables."""
        since = self.agent.started if self.agent is not None else 0.0

        def ready() -> bool:
            if self.agent is not None and not self.agent.running():
                raise RuntimeError(f"agent on {self.netns} exited:\n{self.agent.log()}")
            return self.subnet_env.exists() and self.subnet_env.stat().st_mtime >= since

        wait_for(ready, timeout, f"overlay on {self.netns}", interval=0.1)
        from agent.overlay.subnet_env import parse

        return parse(self.subnet_env.read_text())

    def overlay_state(self) -> dict[str, Any]:
        """The overlay's state file (overlay.json: network, subnet, mtu)."""
        return dict(json.loads((self.state_dir / "overlay.json").read_text()))

    # -- sandboxes -----------------------------------------------------------------------
    def sandbox_netns(self, name: str) -> str:
        return f"vs{self.underlay.token}{self.index}{name}"

    def create_sandbox(self, name: str, echo: bool = True) -> str:
        """Create a sandbox through the CLI; its overlay address. Starts an echo server."""
        ns = self.sandbox_netns(name)
        result = self.cli("sandbox", "create", ns)
        if result.returncode != 0:
            raise RuntimeError(f"sandbox create {ns} failed: {result.stderr}")
        address = result.stdout.strip()
        self.sandboxes[name] = address
        if echo:
            self.start_echo(name)
        return address

    def sandbox_ip(self, name: str) -> str:
        return self.sandboxes[name]

    def delete_sandbox(self, name: str) -> subprocess.CompletedProcess[str]:
        self.stop_echo(name)
        result = self.cli("sandbox", "delete", self.sandbox_netns(name))
        if result.returncode == 0:
            self.sandboxes.pop(name, None)
        return result

    def in_sandbox(
        self, name: str, argv: Sequence[str], check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.sandbox_netns(name), *argv], check=check, **kwargs)

    def start_echo(self, name: str) -> None:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.sandbox_netns(name),
                sys.executable,
                "-m",
                "vulcano.lab.probe",
                "serve",
                str(ECHO_PORT),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
            start_new_session=True,
        )
        self._echo[name] = proc

    def stop_echo(self, name: str) -> None:
        proc = self._echo.pop(name, None)
        if proc is not None:
            services.stop_process(proc)

    def probe(self, name: str, targets: Sequence[str]) -> dict[str, dict[str, bool]]:
        """ICMP and TCP-echo reachability from sandbox `name` to every target address."""
        result = self.in_sandbox(
            name,
            [sys.executable, "-m", "vulcano.lab.probe", "check", str(ECHO_PORT), *targets],
            cwd=REPO,
            env=_env(),
        )
        return dict(json.loads(result.stdout))

    # -- teardown ------------------------------------------------------------------------
    def agent_sandboxes(self) -> list[str]:
        """The sandboxes the agent made (its units' too), from its own records: no etcd."""
        return sorted(p.stem for p in (self.state_dir / "sandboxes").glob("*.json"))

    def remove(self) -> None:
        """Kill the agent and echo servers, delete sandboxes and the host namespace.

        Sandboxes are found by name (the test's) and in the agent's state dir (the ones
        it made for units, whatever they are called), so they go even when etcd is gone.
        """
        self.kill_agent()
        for name in list(self._echo):
            self.stop_echo(name)
        prefix = f"vs{self.underlay.token}{self.index}"
        doomed = set(self.agent_sandboxes())
        if NETNS_DIR.is_dir():
            doomed |= {e.name for e in NETNS_DIR.iterdir() if e.name.startswith(prefix)}
        for name in sorted(doomed):
            if (NETNS_DIR / name).exists():
                _run(["ip", "netns", "delete", name], check=False)
        if (NETNS_DIR / self.netns).exists():
            _run(["ip", "netns", "delete", self.netns], check=False)  # its veth goes too


class Underlay:
    """The network the test hosts share: a namespace of its own holding a bridge, the
    gateway address and a real etcd, reached from the root namespace only through a
    loopback forward (no test-network address is configured there)."""

    def __init__(
        self,
        base: Path,
        with_etcd: bool = True,
        *,
        tls: services.EtcdTLS | None = None,
        etcd_args: Sequence[str] = (),
    ) -> None:
        self.token = secrets.token_hex(2)
        self.base = base
        self.netns = f"vn{self.token}"
        self.subnet = _pick_underlay_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        self.hosts: list[TestHost] = []
        self.etcd: services.Etcd | None = None
        self._with_etcd = with_etcd
        self.tls = tls  # then etcd requires client certificates of that CA
        self._etcd_args = list(etcd_args)
        self._forward: PortForward | None = None

    def __enter__(self) -> Underlay:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    def open(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        _run(["ip", "netns", "add", self.netns])
        ns = ["ip", "-n", self.netns]
        _run([*ns, "link", "set", "lo", "up"])
        _run([*ns, "link", "add", BRIDGE, "type", "bridge"])
        _run([*ns, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", BRIDGE])
        _run([*ns, "link", "set", BRIDGE, "up"])
        if self._with_etcd:
            self._forward = PortForward(self.netns_path, self.gateway, ETCD_CLIENT_PORT)
            scheme = "https" if self.tls is not None else "http"
            self.etcd = services.Etcd(
                name=f"etcd{self.token}",
                client_url=f"{scheme}://{self.gateway}:{ETCD_CLIENT_PORT}",
                peer_url=f"{scheme}://{self.gateway}:{ETCD_PEER_PORT}",
                data_dir=self.base / f"etcd{self.token}",
                extra_args=self._etcd_args,
                launcher=["nsenter", f"--net={self.netns_path}"],
                local_url=f"{scheme}://{self._forward.address}",
                tls=self.tls,
            )
            self.etcd.start()
            self.etcd.wait_healthy()

    @property
    def etcd_endpoint(self) -> str:
        """etcd's client URL as the hosts reach it, on the underlay."""
        assert self.etcd is not None
        return self.etcd.client_url

    @property
    def etcd_local_endpoint(self) -> str:
        """etcd's client URL as the root namespace reaches it (a loopback forward)."""
        assert self.etcd is not None
        return self.etcd.endpoint

    def etcd_client(self) -> Any:
        """A client for the test process itself (through the loopback forward)."""
        from vulcano.etcd import connect

        return connect(
            self.etcd_local_endpoint,
            tls=self.tls.client_files() if self.tls is not None else None,
        )

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block (this thread) on the underlay: sockets made here live there."""
        with entered(self.netns_path):
            yield

    def add_host(self) -> TestHost:
        host = TestHost(self, len(self.hosts))
        self.hosts.append(host)
        host.create()
        return host

    def add_hosts(self, n: int) -> list[TestHost]:
        return [self.add_host() for _ in range(n)]

    def start_agents(self, hosts: Sequence[TestHost], *extra: str) -> None:
        """Start every host's agent at once, then wait until each has its overlay up."""
        for host in hosts:
            host.start_agent(*extra)
        for host in hosts:
            host.wait_overlay()

    def init_network(
        self, network: str = "10.244.0.0/16", subnet_len: int = 24, *extra: str
    ) -> None:
        result = _run(
            [
                sys.executable,
                "-m",
                "agent",
                "network",
                "init",
                "--etcd-endpoints",
                self.etcd_local_endpoint,
                "--network",
                network,
                "--subnet-len",
                str(subnet_len),
                *extra,
            ],
            check=False,
            cwd=REPO,
            env=_env(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"network init failed: {result.stderr}")

    def remove_host(self, host: TestHost) -> None:
        host.remove()
        self.hosts.remove(host)

    def close(self) -> None:
        for host in list(self.hosts):
            try:
                host.remove()
            except Exception as exc:  # keep tearing down the rest
                print(f"teardown of {host.netns} failed: {exc}", file=sys.stderr)
        self.hosts.clear()
        if self.etcd is not None:
            self.etcd.stop()
        if self._forward is not None:
            self._forward.close()
        if self.netns_path.exists():
            _run(["ip", "netns", "delete", self.netns], check=False)  # the bridge goes too


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VULCANO_")}
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


def mesh_ok(results: dict[str, dict[str, dict[str, bool]]]) -> bool:
    """True when every probe (source → target, ICMP and TCP) succeeded."""
    return all(all(r.values()) for per_source in results.values() for r in per_source.values())


def wait_mesh(
    hosts: Sequence[TestHost], sandbox: str, timeout: float
) -> dict[str, dict[str, dict[str, bool]]]:
    """Probe until every host's `sandbox` reaches every other's; the last results."""
    addresses = {h.netns: h.sandbox_ip(sandbox) for h in hosts}
    deadline = time.monotonic() + timeout
    while True:
        results = {
            h.netns: h.probe(sandbox, [ip for ns, ip in addresses.items() if ns != h.netns])
            for h in hosts
        }
        if mesh_ok(results) or time.monotonic() > deadline:
            return results
        time.sleep(0.2)
