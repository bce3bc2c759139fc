"""The panel's own certificate renewed while `vulcano serve` runs, with no downtime: the
next real handshake presents the renewed certificate for the same key, a connection
opened before goes on, /healthz answers throughout, the new fingerprint is printed and
reported by the relay; a certificate given with --tls-cert is never written."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from container.panel import tls
from container.panel.renewal import fingerprint_line
from container.services import enrolment
from tests.container.panel.served import ServedPanel, served_panel
from tests.container.relay.conftest import TOKEN
from tests.container.relay.receiver import Receiver, receiving
from vulcano import pki, selfsigned
from vulcano.heartbeat import panel_from_dict
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

# the keeper checks every second here (6 h by default)
CHECK_EVERY = {"VULCANO_PANEL_CERT_CHECK_INTERVAL": "1"}
DAY = datetime.timedelta(days=1)


def _fingerprint(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _handshake(url: str) -> tuple[str, str, datetime.datetime, int]:
    """A new TLS connection asking /healthz: the presented certificate's fingerprint, key
    pin and not-after, and the answer's status."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # compared by its key's pin, as nodes check it
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context)
    try:
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()
    assert der is not None
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return _fingerprint(der), selfsigned.spki_pin(pem), pki.expiry(pem), status


def _near_its_end(cert_path: Path, key_path: Path) -> str:
    """Write over the stored certificate one for the same key and names that ends in 10
    days (as a year of serving would leave it); its fingerprint."""
    ips, dns = [], []
    for name in selfsigned.san_names(cert_path.read_bytes()):
        (ips if name[0].isdigit() or ":" in name else dns).append(name)
    short = selfsigned.self_signed_server(
        "vulcano panel",
        ips=ips,
        dns=dns,
        valid_for=397 * DAY,
        not_before=datetime.datetime.now(datetime.UTC) - 387 * DAY,
        key=pki.load_key(key_path.read_bytes()),
    )
    pki.write_pem(cert_path, short.cert_pem, private=False)
    return pki.fingerprint(short.cert_pem)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@contextmanager
def _checking_panel(tmp_path: Path, state: Path) -> Iterator[ServedPanel]:
    """serve over HTTPS, checking its certificate every second, with the URL nodes enrol
    at (serve records it with the key's pin)."""
    port = reserve_port()
    env = {**CHECK_EVERY, "VULCANO_PANEL_URL": f"https://127.0.0.1:{port}"}
    with served_panel(state, tmp_path / "serve.log", https=True, env=env, port=port) as panel:
        yield panel


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_certificate_near_its_end_is_renewed_for_its_key_while_serving_with_no_downtime(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cert_path, key_path = state / "panel-tls.pem", state / "panel-tls-key.pem"
    with _checking_panel(tmp_path, state) as panel:
        first = cert_path.read_bytes()
        key = key_path.read_bytes()
        started, pin = pki.fingerprint(first), selfsigned.spki_pin(first)
        trusted = tmp_path / "trusted.pem"  # what the open connection was checked against
        trusted.write_bytes(first)
        session = requests.Session()
        session.verify, session.trust_env = str(trusted), False
        assert session.get(panel.url + "/healthz", timeout=10).status_code == 200
        manager = session.get_adapter(panel.url).poolmanager
        (pool,) = [manager.pools[key] for key in manager.pools.keys()]  # noqa: SIM118
        assert pool.num_connections == 1

        short = _near_its_end(cert_path, key_path)
        failures: list[str] = []
        presented: list[str] = []

        def renewed() -> tuple[str, datetime.datetime] | None:
            # every poll: a new connection, and a request on the one opened before
            try:
                fingerprint, presented_pin, not_after, status = _handshake(panel.url)
                if status != 200 or presented_pin != pin:
                    failures.append(f"new connection: {status}, pin {presented_pin}")
                presented.append(fingerprint)
                kept = session.get(panel.url + "/healthz", timeout=10)
                if kept.status_code != 200:
                    failures.append(f"open connection: {kept.status_code}")
            except (OSError, requests.RequestException) as exc:
                failures.append(repr(exc))
                return None
            if fingerprint in {started, short}:
                return None
            return fingerprint, not_after

        fingerprint, not_after = wait_for(renewed, 90, "the renewed certificate", 0.05)
        assert failures == []
        assert short != started
        assert set(presented) <= {started, short, fingerprint}
        # not-after about 397 days out (less the clock skew it starts back by)
        assert abs(not_after - datetime.datetime.now(datetime.UTC) - tls.VALIDITY) < DAY
        assert key_path.read_bytes() == key  # the same key: the pin nodes enrol by holds
        assert enrolment.panel_endpoint(state) == enrolment.PanelEndpoint(panel.url, pin)
        assert pki.fingerprint(cert_path.read_bytes()) == fingerprint
        wait_for(lambda: fingerprint_line(panel.url, fingerprint) in panel.log(), 30, "the line")
        log = panel.log()
        assert "panel certificate renewed for its key (the stored one ends" in log
        assert log.count("Booting worker") == 1  # served on by the same worker: no restart
        # the connection opened before the renewal: the same one, still answering, on the
        # certificate it began with
        assert session.get(panel.url + "/healthz", timeout=10).status_code == 200
        assert pool.num_connections == 1
        opened = [c for c in list(pool.pool.queue) if c is not None and c.sock is not None]
        assert len(opened) == 1
        assert _fingerprint(opened[0].sock.getpeercert(binary_form=True)) == started
        session.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_lost_key_is_replaced_while_serving_and_nodes_are_told_its_new_pin(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cert_path, key_path = state / "panel-tls.pem", state / "panel-tls-key.pem"
    with _checking_panel(tmp_path, state) as panel:
        first = cert_path.read_bytes()
        started, pin = pki.fingerprint(first), selfsigned.spki_pin(first)
        key_path.unlink()  # no key left to keep: handshakes fail until the next check

        def new_key() -> tuple[str, str] | None:
            fingerprint, presented_pin, _, status = _handshake(panel.url)
            return (
                (fingerprint, presented_pin) if status == 200 and fingerprint != started else None
            )

        fingerprint, new_pin = wait_for(new_key, 90, "a certificate for a new key")
        assert new_pin != pin
        assert pki.key_matches(cert_path.read_bytes(), key_path.read_bytes())
        told = enrolment.PanelEndpoint(panel.url, new_pin)
        wait_for(lambda: enrolment.panel_endpoint(state) == told, 30, "the new pin recorded")
        log = panel.log()
        assert "panel certificate made with a new key (its key is missing)" in log
        assert fingerprint_line(panel.url, fingerprint) in log


def _own_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate of the user's own for 127.0.0.1 that ends in 10 days, and its key."""
    directory.mkdir()
    issued = selfsigned.self_signed_server(
        "my panel",
        ips=["127.0.0.1"],
        dns=["localhost"],
        valid_for=397 * DAY,
        not_before=datetime.datetime.now(datetime.UTC) - 387 * DAY,
    )
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    return cert, key


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_users_own_certificate_is_never_written_even_near_its_end(tmp_path: Path) -> None:
    cert, key = _own_certificate(tmp_path / "mine")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert, key)}
    state = tmp_path / "state"
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with served_panel(
        state, tmp_path / "serve.log", https=True, env=CHECK_EVERY, args=args, cert=cert
    ) as panel:
        warned = "the panel does not renew it"
        # two checks have run (a warning each) and found it near its end
        wait_for(lambda: panel.log().count(warned) >= 2, 60, "two checks of the certificate")
        assert _handshake(panel.url)[0] == pki.fingerprint(before[cert][0])
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert, key)} == before
    assert not (state / "panel-tls.pem").exists()
    assert not (state / "panel-tls-key.pem").exists()


def _reported(receiver: Receiver) -> list[str]:
    return [p["fingerprint"] for p in receiver.panels if p is not None]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_relays_heartbeat_carries_the_renewed_fingerprint(
    tmp_path: Path, receiver: Receiver
) -> None:
    token = tmp_path / "report-token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    env = {
        **CHECK_EVERY,
        "VULCANO_INSTALLER_URL": receiver.url,
        "VULCANO_REPORT_TOKEN_FILE": str(token),
        "VULCANO_RELAY_INTERVAL": "1",
    }
    state = tmp_path / "state"
    cert_path, key_path = state / "panel-tls.pem", state / "panel-tls-key.pem"
    with served_panel(state, tmp_path / "serve.log", https=True, env=env) as panel:
        started = pki.fingerprint(cert_path.read_bytes())
        wait_for(lambda: started in _reported(receiver), 60, "a heartbeat naming the panel")
        short = _near_its_end(cert_path, key_path)

        def renewed() -> str | None:
            fingerprint = _handshake(panel.url)[0]
            return None if fingerprint in {started, short} else fingerprint

        fingerprint = wait_for(renewed, 90, "the renewed certificate")
        # the beats after the renewal name it, as the installer will show it
        wait_for(lambda: _reported(receiver)[-1:] == [fingerprint], 60, "a heartbeat naming it")
        last = next(p for p in reversed(receiver.panels) if p is not None)
        assert panel_from_dict(last).fingerprint == fingerprint
        assert last["url"] == panel.url
        assert set(_reported(receiver)) <= {started, short, fingerprint}
