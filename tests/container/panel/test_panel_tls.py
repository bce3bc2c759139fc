"""The panel over HTTPS: its certificate made once and kept, its fingerprint in the log
the one a real TLS handshake presents, plain HTTP only on loopback unless forced."""

from __future__ import annotations

import datetime
import hashlib
import re
import shutil
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from container.cli import main
from container.panel import tls
from container.services.errors import SettingsError
from tests.conftest import require
from tests.container.panel.served import login, served_panel
from vulcano import selfsigned

PASSWORD = "tls-test-password"
_LOGGED = re.compile(r"certificate SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


def presented_fingerprint(url: str) -> str:
    """The SHA-256 fingerprint of the certificate the server at ``url`` presents."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we read the certificate to compare, not to trust it
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_the_certificate_is_made_once_then_reused_with_its_key_0600(tmp_path: Path) -> None:
    names = ["panel.example", "203.0.113.7", *tls.ALWAYS_NAMES]
    first = tls.ensure_certificate(tmp_path, names)
    assert first.made
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    sans = selfsigned.san_names(first.cert_path.read_bytes())
    assert {"panel.example", "203.0.113.7", "localhost", "127.0.0.1", "::1"} <= sans
    again = tls.ensure_certificate(tmp_path, names)
    assert not again.made
    assert again.fingerprint == first.fingerprint
    assert again.cert_path.read_bytes() == first.cert_path.read_bytes()


def test_a_loosened_key_is_made_0600_again(tmp_path: Path) -> None:
    made = tls.ensure_certificate(tmp_path, list(tls.ALWAYS_NAMES))
    made.key_path.chmod(0o644)
    tls.ensure_certificate(tmp_path, list(tls.ALWAYS_NAMES))
    assert stat.S_IMODE(made.key_path.stat().st_mode) == 0o600


def test_it_is_renewed_near_its_end_or_when_a_name_is_missing(tmp_path: Path) -> None:
    names = list(tls.ALWAYS_NAMES)
    first = tls.ensure_certificate(tmp_path, names)
    late = first.not_after - tls.RENEW_BEFORE + datetime.timedelta(days=1)
    renewed = tls.ensure_certificate(tmp_path, names, now=late)
    assert renewed.made and renewed.fingerprint != first.fingerprint
    assert renewed.not_after > first.not_after
    wider = tls.ensure_certificate(tmp_path, [*names, "panel.example"])
    assert wider.made and "panel.example" in selfsigned.san_names(wider.cert_path.read_bytes())


def test_the_fingerprint_is_the_one_openssl_prints(tmp_path: Path) -> None:
    require(shutil.which("openssl") is not None, "needs openssl")
    made = tls.ensure_certificate(tmp_path, list(tls.ALWAYS_NAMES))
    printed = subprocess.run(
        ["openssl", "x509", "-in", str(made.cert_path), "-noout", "-fingerprint", "-sha256"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert printed.strip() == f"sha256 Fingerprint={made.fingerprint}"


FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 10.0.0.0/24 2 0 2
           |-- 10.0.0.0
              /24 link UNICAST
           |-- 10.0.0.7
              /32 host LOCAL
           |-- 10.0.0.255
              /32 link BROADCAST
Local:
           |-- 10.0.0.7
              /32 host LOCAL
"""
IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000007 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
"""


def test_the_machines_own_addresses_are_read_from_the_kernels_tables(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(FIB_TRIE)
    (tmp_path / "if_inet6").write_text(IF_INET6)
    found = tls.local_addresses(tmp_path / "fib_trie", tmp_path / "if_inet6")
    assert found == ["10.0.0.7", "2001:db8::7"]  # no loopback, no link-local, once each
    assert tls.local_addresses(tmp_path / "absent", tmp_path / "absent") == []


def test_own_certificate_problems_name_the_flag(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = tls.ensure_certificate(tmp_path / "a", ["localhost"])
    b = tls.ensure_certificate(tmp_path / "b", ["localhost"])
    with pytest.raises(SettingsError, match="not the key of --tls-cert") as mismatch:
        tls.own_certificate(a.cert_path, b.key_path)
    assert mismatch.value.setting == "--tls-key"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match="not a PEM certificate"):
        tls.own_certificate(junk, a.key_path)
    with pytest.raises(SettingsError, match="cannot be read"):
        tls.own_certificate(tmp_path / "absent.pem", a.key_path)
    assert tls.own_certificate(a.cert_path, a.key_path).own


def _serve(state: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["serve", "--cluster-name", "prod", "--cluster-size", "3", "--state-dir", str(state),
         *args],
        env=env,
        catch_exceptions=False,
    )  # fmt: skip
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--plain-http"], "plain HTTP on 0.0.0.0 would send the admin password"),
        (["--plain-http", "--address", "10.1.2.3"], "--force-plain-http"),
        (["--tls-cert", "/etc/hostname"], "needs --tls-key too"),
        (["--tls-key", "/etc/hostname"], "needs --tls-cert too"),
        (["--tls-name", "not a name!"], "not an IP address or DNS name"),
    ],
)
def test_unsafe_or_incomplete_transport_flags_are_refused_before_anything_is_made(
    tmp_path: Path, args: list[str], says: str
) -> None:
    state = tmp_path / "state"
    code, output = _serve(state, *args)
    assert code == 2, output
    assert says in " ".join(output.split())
    assert not (state / "panel-tls-key.pem").exists()


def test_the_units_plain_http_variable_is_held_to_the_same_rule(tmp_path: Path) -> None:
    # what the installer's "localhost" choice sets, here without the loopback address
    code, output = _serve(tmp_path / "state", env={"VULCANO_PANEL_PLAIN_HTTP": "1"})
    assert code == 2
    assert "--plain-http" in output and "SSH tunnel" in " ".join(output.split())


def test_a_users_certificate_that_is_not_its_keys_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cert_a = tls.ensure_certificate(a, ["localhost"])
    cert_b = tls.ensure_certificate(b, ["localhost"])
    code, output = _serve(
        tmp_path / "state", "--tls-cert", str(cert_a.cert_path), "--tls-key", str(cert_b.key_path)
    )
    assert code == 2
    assert "--tls-key" in output and "not the key of --tls-cert" in output


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_logged_fingerprint_is_the_presented_certificates_and_it_survives_restarts(
    tmp_path: Path,
) -> None:
    state, log = tmp_path / "state", tmp_path / "serve.log"
    with served_panel(state, log, https=True) as panel:
        text = panel.log()
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if "generated admin password" in line)
        password = lines[at].rsplit(" ", 1)[-1]
        # the password's block names the certificate to expect
        assert "SHA-256 fingerprint" in lines[at + 1]
        logged = set(_LOGGED.findall(text)) | {lines[at + 1].rsplit(" ", 1)[-1]}
        assert len(logged) == 1
        fingerprint = logged.pop()
        assert presented_fingerprint(panel.url) == fingerprint
        # verified against that certificate: its SANs hold 127.0.0.1
        session = login(panel.url, password, verify=panel.verify)
        cookie = next(c for c in session.cookies if c.name == "vulcano_panel")
        assert cookie.secure
        page = session.get(panel.url + "/clusters", timeout=10)
        assert page.status_code == 200
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(panel.url + "/healthz", timeout=10)  # no CA vouches for it
    with served_panel(state, log, https=True) as panel:
        assert presented_fingerprint(panel.url) == fingerprint
        again = panel.log()[len(text) :]
        assert f"certificate SHA-256 fingerprint {fingerprint}" in again  # every start
        assert "generated admin password" not in again
        login(panel.url, password, verify=panel.verify)
