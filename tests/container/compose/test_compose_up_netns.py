"""`vulcano compose up|down` of the web + redis app on real agents in network namespaces.

The app's image is built locally (`vulcano.lab.composeapp`, cached by its inputs); the
units run it with podman. After `compose up`, each web replica answers on its own
sandbox address with a counter that grows across replicas (so the one redis is really
used, reached over the overlay by the name the Compose file gives it); after
`compose down` no unit and no container is left.
"""

from __future__ import annotations

import contextlib
import json
import resource
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.units.machine_units import sandbox_name
from container.cli import main
from tests.conftest import require_root
from vulcano.lab.cluster import kill_by_pid, pids_of
from vulcano.lab.composeapp import build_app_image
from vulcano.lab.netns import NETNS_DIR, TestHost, Underlay, _run
from vulcano.lab.podman import RUNTIME, Podman
from vulcano.lab.poll import wait_for
from vulcano.registry import Registry

pytestmark = [pytest.mark.root, pytest.mark.slow]

COMPOSE = """\
services:
  web:
    image: {image}
    command: ["python3", "/app/web.py", "8000"]
    environment:
      REDIS_HOST: redis
    ports: ["8080:8000"]
    depends_on:
      redis:
        condition: service_started
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8000))"]
      interval: 2s
      timeout: 1s
      retries: 3
    restart: on-failure
    stop_grace_period: 2s
    deploy:
      replicas: 3
  redis:
    image: {image}
    command: redis-server --port 6379 --protected-mode no --save ""
    expose: ["6379"]
    restart: always
"""


def _limit(kind: int, cap: int) -> int:
    soft, _ = resource.getrlimit(kind)
    return cap if soft == resource.RLIM_INFINITY else min(soft, cap)


def _runtime_args() -> list[str]:
    """podman as this machine runs it: runc, and rlimits no higher than ours."""
    nofile, nproc = _limit(resource.RLIMIT_NOFILE, 65536), _limit(resource.RLIMIT_NPROC, 4096)
    return [
        "--runtime",
        "podman",
        f"--runtime-arg=--runtime={RUNTIME}",
        f"--run-arg=--ulimit=nofile={nofile}:{nofile}",
        f"--run-arg=--ulimit=nproc={nproc}:{nproc}",
    ]


@dataclass
class App:
    net: Underlay
    hosts: list[TestHost]
    store: Registry
    project: str
    file: Path
    runner: CliRunner

    def cli(self, *args: str) -> Result:
        return self.runner.invoke(main, ["--endpoint", self.net.etcd_local_endpoint, *args])

    def compose(self, command: str, *extra: str) -> Result:
        return self.cli("compose", command, str(self.file), "--prefix", self.project, *extra)

    def containers(self) -> list[str]:
        out = Podman().run("ps", "-a", "--format", "json").stdout
        return [n for c in json.loads(out or "[]") for n in c["Names"] if self.project in n]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    require_root()
    image = build_app_image()
    project = "vu" + secrets.token_hex(4)
    file = tmp_path / "app" / "docker-compose.yml"
    file.parent.mkdir()
    file.write_text(COMPOSE.format(image=image))
    with Underlay(tmp_path / "net") as net:
        hosts = net.add_hosts(3)
        net.init_network("10.245.0.0/16", 24)
        for h in hosts:
            h.start_agent(ttl=3)
        for h in hosts:
            h.wait_overlay()
        client = net.etcd_client()
        store = Registry(client)
        app = App(net, hosts, store, project, file, CliRunner())
        specs: list[str] = []
        try:
            yield app
        finally:
            with contextlib.suppress(Exception):  # teardown goes on whatever failed
                specs = list(store.specs())
                if specs:
                    store.destroy(specs)
                wait_for(lambda: not app.containers(), 30, "containers stopped after destroy")
            client.close()
            for h in hosts:
                h.kill_agent()
            for name in app.containers():
                Podman().run("rm", "-f", name, check=False)
            kill_by_pid(pids_of(project))
            for h in hosts:
                for unit in specs:
                    ns = sandbox_name(h.machine_id, unit)
                    if (NETNS_DIR / ns).exists():
                        _run(["ip", "netns", "delete", ns], check=False)


def _get(host: TestHost, ip: str, port: int) -> str:
    code = (
        "import urllib.request;"
        f"print(urllib.request.urlopen('http://{ip}:{port}/', timeout=5).read().decode())"
    )
    done = host.exec([sys.executable, "-c", code], check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def _answer(host: TestHost, ip: str) -> Callable[[], str]:
    return lambda: _get(host, ip, 8000)


def test_compose_up_runs_web_replicas_that_share_redis_and_down_leaves_nothing(
    app: App,
) -> None:
    r = app.compose("up", *_runtime_args(), "--block-timeout", "120")
    assert r.exit_code == 0, r.output
    web = [f"{app.project}-web@{i}.service" for i in (1, 2, 3)]
    redis = f"{app.project}-redis.service"
    states = app.store.states()
    assert all(states[n].active == "active" for n in [*web, redis]), states
    # the replicas spread (Conflicts=), each in its own sandbox on the overlay
    assert len({states[n].machine_id for n in web}) == 3
    addresses = [states[n].sandbox_ip for n in web]
    assert all(a and a.startswith("10.245.") for a in addresses)
    # web reaches redis by name: the address compose up wrote into its unit
    unit_text = app.store.text(app.store.specs()[f"{app.project}-web@.service"].hash) or ""
    assert f"--add-host redis:{states[redis].sandbox_ip}" in unit_text
    assert f"redis\t{redis}\t{states[redis].sandbox_ip}" in r.stdout

    counts: list[int] = []
    probe = app.hosts[0]
    for _ in range(2):
        for ip in addresses:
            assert ip is not None
            body = wait_for(_answer(probe, ip), 60, f"web at {ip}:8000")
            counts.append(int(body.split()[0]))
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts
    assert len(app.containers()) == 4

    # ...and the replicas answer through a balancer, from their published endpoints (each
    # one running and passing the healthcheck the file gave it)
    balancer = app.file.parent / "balancer.service"
    balancer.write_text(
        f"[Service]\nExecStart={sys.executable} -m agent balancer --etcd-endpoints "
        f"{app.net.etcd_endpoint} --machine-id %m --for {app.project}-web@ --listen :8088 "
        f"--kind nginx --state-dir {app.file.parent}/balancer --settle 200ms\n\n"
        f"[X-Fleet]\nMachineID={probe.machine_id}\n"
    )
    r = app.cli("start", "--block-timeout", "60", str(balancer))
    assert r.exit_code == 0, r.output
    try:
        wait_for(lambda: _get(probe, probe.ip, 8088), 60, "the app through the balancer")
    except TimeoutError:
        seen = [
            (meta.key.decode(), value.decode())
            for prefix in (
                app.store.ks.endpoints,
                app.store.ks.check_states,
                app.store.ks.balancers,
            )
            for value, meta in app.store.client.get_prefix(prefix)
        ]
        raise AssertionError(f"nothing through the balancer; etcd holds {seen}") from None
    through = [int(_get(probe, probe.ip, 8088).split()[0]) for _ in range(9)]
    assert through == sorted(through) and len(set(through)) == 9, through
    assert min(through) > max(counts)  # the same redis behind every replica
    r = app.cli("destroy", "balancer.service")
    assert r.exit_code == 0, r.output

    r = app.compose("down", *_runtime_args(), "--block-timeout", "60")
    assert r.exit_code == 0, r.output
    assert sorted(line.split()[-1] for line in r.output.splitlines()) == sorted(
        [*web, f"{app.project}-web@.service", redis]
    )
    assert not [n for n in app.store.specs() if app.project in n]
    wait_for(lambda: not app.containers(), 30, "no container left after compose down")
    assert not subprocess.run(
        ["podman", "--runtime", RUNTIME, "ps", "-a", "-q", "--filter", f"name={app.project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
