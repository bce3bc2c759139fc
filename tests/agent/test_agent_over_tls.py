"""`vulcano-agent run` and `vulcano-agent balancer` as processes against etcd requiring
client certificates: the agent registers its machine with the cluster's certificate
(flags), the balancer reads its endpoints with the files named in the agent's config
file, and takes them again when the agent renews them in place (its next connection
shows the renewed certificate, the first one revoked); bad TLS settings stop either
before it touches anything, naming the flag, the variable or the config file's key;
`network init` writes over TLS too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from agent.cli import main
from tests.conftest import require
from vulcano import etcd as vulcano_etcd
from vulcano import pki
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.balancer import put_endpoint
from vulcano.lab.etcdtls import EtcdTLS
from vulcano.lab.httpbackend import HttpBackend, get
from vulcano.lab.netns import REPO
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.records import BalancerStatus

KS = Keyspace()
WAIT = 30.0


@pytest.fixture
def tls(etcd_tls: services.Etcd) -> services.EtcdTLS:
    assert etcd_tls.tls is not None
    return etcd_tls.tls


@pytest.fixture
def client(etcd_tls: services.Etcd, tls: services.EtcdTLS) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd_tls.endpoint, tls=tls.client_files())
    yield c
    c.close()


def agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


def run_argv(endpoint: str, state: Path, *extra: str) -> list[str]:
    return agent(
        "run", "--no-overlay", "--etcd-endpoints", endpoint, "--public-ip", "198.51.100.7",
        "--machine-id", "tls-m1", "--state-dir", str(state), "--ttl", "5", *extra,
    )  # fmt: skip


def test_the_agent_registers_its_machine_over_tls(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            run_argv(
                etcd_tls.endpoint,
                state,
                "--ca-file",
                str(tls.cacert),
                "--cert",
                str(tls.client_cert),
                "--key",
                str(tls.client_key),
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        value = wait_for(
            lambda: client.get(KS.machine("tls-m1"))[0], WAIT, "the machine record over TLS"
        )
        assert json.loads(value)["public_ip"] == "198.51.100.7"
        # one-shot commands (sandbox, network down) reach etcd with the same files
        node = json.loads((state / "node.json").read_text())
        assert (node["cacert"], node["cert"], node["key"]) == (
            str(tls.cacert),
            str(tls.client_cert),
            str(tls.client_key),
        )
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(WAIT) == 0, log.read_text()[-2000:]
        assert client.get(KS.machine("tls-m1"))[0] is None
    finally:
        services.stop_process(proc)


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("none", "https:// etcd endpoints need --cacert"),
        ("env-missing", "VULCANO_CACERT {missing}: No such file or directory"),
        ("file-key-without-cert", "config file {config}: key given without --cert"),
        ("flag-garbage", "--cert {garbage}: not a PEM certificate"),
    ],
)
def test_bad_tls_settings_stop_the_agent_before_it_starts(
    etcd_tls: services.Etcd,
    tls: services.EtcdTLS,
    client: Any,
    tmp_path: Path,
    setup: str,
    says: str,
) -> None:
    state = tmp_path / "state"
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    config = tmp_path / "agent.toml"
    config.write_text(f'cacert = "{tls.cacert}"\nkey = "{tls.client_key}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VULCANO_")}
    extra: list[str] = []
    if setup == "env-missing":
        env["VULCANO_CACERT"] = str(missing)
    elif setup == "file-key-without-cert":
        extra = ["--config", str(config)]
    elif setup == "flag-garbage":
        extra = ["--cacert", str(tls.cacert), "--cert", str(garbage), "--key", str(tls.client_key)]
    result = subprocess.run(
        run_argv(etcd_tls.endpoint, state, *extra),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert says.format(missing=missing, config=config, garbage=garbage) in result.stderr
    assert not state.exists()
    assert client.get(KS.machine("tls-m1"))[0] is None


def test_the_balancer_reads_endpoints_over_tls_with_the_agents_config(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any, tmp_path: Path
) -> None:
    require(shutil.which("nginx") is not None, "needs Debian's nginx")
    backend = HttpBackend("127.0.0.22", reserve_port("127.0.0.22")).start()
    port = reserve_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'etcd-endpoints = "{etcd_tls.endpoint}"\nmachine-id = "lb-tls"\n'
        f'cacert = "{tls.cacert}"\ncert = "{tls.client_cert}"\nkey = "{tls.client_key}"\n'
    )
    proc = subprocess.Popen(
        agent(
            "balancer",
            "--config",
            str(config),
            "--for",
            "web@",
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(tmp_path / "lb"),
            "--settle",
            "200ms",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        put_endpoint(client, KS, "web@1.service", "m1", backend)
        key = KS.balancer("web@", "lb-tls")

        def serving() -> BalancerStatus | None:
            value = client.get(key)[0]
            status = BalancerStatus.from_json(value) if value else None
            return status if status and status.backends == [backend.name] else None

        status = wait_for(serving, WAIT, "the balancer serving its backend read over TLS")
        assert status.status == "ok"
        assert get("127.0.0.1", port) == (200, backend.name)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            services.stop_process(proc)
        backend.stop()


def test_the_balancer_refuses_https_without_a_ca(etcd_tls: services.Etcd, tmp_path: Path) -> None:
    result = subprocess.run(
        agent(
            "balancer",
            "--for",
            "web@",
            "--listen",
            "127.0.0.1:1",
            "--etcd-endpoints",
            etcd_tls.endpoint,
            "--machine-id",
            "lb-tls",
            "--state-dir",
            str(tmp_path / "lb"),
        ),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=WAIT,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("VULCANO_")},
    )
    assert result.returncode == 2, result.stderr
    assert "https:// etcd endpoints need --cacert" in result.stderr
    assert not (tmp_path / "lb").exists()


def test_network_init_writes_over_tls_and_refuses_without_a_ca(
    etcd_tls: services.Etcd, tls: services.EtcdTLS, client: Any
) -> None:
    runner = CliRunner()
    init = ["network", "init", "--network", "10.244.0.0/16", "--endpoint", etcd_tls.endpoint]
    env = {"VULCANO_CONFIG": "", "VULCANO_ETCD_ENDPOINTS": "", "VULCANO_ENDPOINT": ""}
    refused = runner.invoke(main, init, env=env)
    assert refused.exit_code == 1
    assert "https:// etcd endpoints need --cacert" in refused.output
    assert client.get(KS.network_config)[0] is None
    env |= {
        "VULCANO_CACERT": str(tls.cacert),
        "VULCANO_CERT": str(tls.client_cert),
        "VULCANO_KEY": str(tls.client_key),
    }
    written = runner.invoke(main, init, env=env)
    assert written.exit_code == 0 and written.output.startswith("initialised"), written.output
    assert json.loads(client.get(KS.network_config)[0])["network"] == "10.244.0.0/16"


RELOADED = "TLS files changed: etcd connections use them from now on"


def _connections_of(pid: int, port: int) -> list[str]:
    """The local ends (address:port) of ``pid``'s established TCP connections to ``port``."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dport", "=", str(port)],
        capture_output=True, text=True, check=True, timeout=WAIT,
    ).stdout  # fmt: skip
    return [line.split()[2] for line in out.splitlines() if f"pid={pid}," in line]


def _cut(local: str) -> None:
    """Close the TCP connection whose local end is ``local`` (``ss -K``: needs root)."""
    host, port = local.rsplit(":", 1)
    subprocess.run(
        ["ss", "-K", "-tn", "src", host, "sport", "=", port],
        check=True, capture_output=True, timeout=WAIT,
    )  # fmt: skip


def test_the_balancer_takes_renewed_files_for_its_new_connections(tmp_path: Path) -> None:
    require(shutil.which("nginx") is not None, "needs Debian's nginx")
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    require(os.geteuid() == 0, "cutting the balancer's connections (ss -K) needs root")
    tls = EtcdTLS.make(tmp_path / "tls")
    crl = tmp_path / "crl.pem"
    pki.write_pem(crl, pki.new_crl(tls.ca, []), private=False)
    etcd = services.new_etcd(tmp_path, tls=tls, extra_args=[f"--client-crl-file={crl}"])
    # the node's files, which its agent renews in place; a copy of the first ones
    first = pki.issue(tls.ca, "lb-node", "client")
    (tmp_path / "node").mkdir()
    first_cert, first_key = pki.write_issued(tmp_path / "node", "first", first)
    cert, key = pki.write_issued(tmp_path / "node", "node", first)
    backends = [HttpBackend(ip, reserve_port(ip)).start() for ip in ("127.0.0.22", "127.0.0.23")]
    port = reserve_port()
    log = tmp_path / "balancer.log"
    proc: subprocess.Popen[bytes] | None = None
    client: Any = None
    etcd.start()
    try:
        etcd.wait_healthy()
        config = tmp_path / "agent.toml"
        config.write_text(
            f'etcd-endpoints = "{etcd.endpoint}"\nmachine-id = "lb-tls"\n'
            f'cacert = "{tls.cacert}"\ncert = "{cert}"\nkey = "{key}"\n'
        )
        client = vulcano_etcd.connect(etcd.endpoint, tls=tls.client_files())
        with log.open("wb") as out:
            proc = subprocess.Popen(
                agent(
                    "balancer", "--config", str(config), "--for", "web@",
                    "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "lb"),
                    "--settle", "200ms",
                ),
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            )  # fmt: skip

        def serving(*wanted: HttpBackend) -> bool:
            value = client.get(KS.balancer("web@", "lb-tls"))[0]
            status = BalancerStatus.from_json(value) if value else None
            return status is not None and set(status.backends) == {b.name for b in wanted}

        put_endpoint(client, KS, "web@1.service", "m1", backends[0])
        wait_for(lambda: serving(backends[0]), WAIT, "the balancer serving web@1")

        # renewed as the agent does it: the key, then the certificate, over the files
        renewed = pki.issue(tls.ca, "lb-node", "client")
        pki.write_pem(key, renewed.key_pem, private=True)
        pki.write_pem(cert, renewed.cert_pem, private=False)
        wait_for(lambda: RELOADED in log.read_text(), WAIT, "the balancer taking the files")

        # the first certificate revoked and the balancer's connections cut: only a new
        # connection with the renewed certificate gets in
        pki.write_pem(crl, pki.new_crl(tls.ca, [first.cert.serial_number]), private=False)
        with pytest.raises(requests.exceptions.ConnectionError):  # SSLError among them
            requests.get(
                f"{etcd.endpoint}/health", timeout=5, verify=str(tls.cacert),
                cert=(str(first_cert), str(first_key)),
            )  # fmt: skip
        _, etcd_port = etcd.host_port
        held = _connections_of(proc.pid, etcd_port)
        assert held, "the balancer holds no etcd connection to cut"
        for local in held:
            _cut(local)
        assert not set(held) & set(_connections_of(proc.pid, etcd_port))
        put_endpoint(client, KS, "web@2.service", "m2", backends[1])
        wait_for(lambda: serving(*backends), WAIT, "the balancer serving web@2, read anew")
        assert get("127.0.0.1", port)[0] == 200
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            services.stop_process(proc)
        for backend in backends:
            backend.stop()
        etcd.stop()
