"""A renewed panel certificate keeps its key (the pin nodes enrol by) whenever the key is
sound; a new key only when it is missing, unreadable, not P-256 or not the certificate's.
The keeper announces a new fingerprint and records a new pin only when they change."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from container.panel import tls
from container.panel.renewal import CertificateKeeper, fingerprint_line
from container.services import enrolment
from vulcano import pki, selfsigned

NAMES = list(tls.ALWAYS_NAMES)
DAY = datetime.timedelta(days=1)


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert_for(key: ec.EllipticCurvePrivateKey) -> bytes:
    return selfsigned.self_signed_server("t", dns=["localhost"], key=key).cert_pem


KEY = _p256()
OTHER = _p256()
KEEP_TABLE = [
    ("the certificate's key", _cert_for(KEY), _pem(KEY), True),
    ("no certificate beside it", None, _pem(KEY), True),
    ("a certificate that does not read", b"junk\n", _pem(KEY), True),
    ("another key's certificate", _cert_for(OTHER), _pem(KEY), False),
    ("no key", _cert_for(KEY), None, False),
    ("a key that does not read", _cert_for(KEY), b"-----BEGIN PRIVATE KEY-----\nx\n", False),
    ("a P-384 key", None, _pem(ec.generate_private_key(ec.SECP384R1())), False),
    (
        "an RSA key",
        None,
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        False,
    ),
]


@pytest.mark.parametrize(
    ("case", "cert_pem", "key_pem", "kept"), KEEP_TABLE, ids=[c[0] for c in KEEP_TABLE]
)
def test_which_stored_key_a_new_certificate_keeps(
    case: str, cert_pem: bytes | None, key_pem: bytes | None, kept: bool
) -> None:
    key = tls.key_to_keep(cert_pem, key_pem)
    assert (key is not None) == kept, case
    if key is not None:
        assert _pem(key) == key_pem


def _late(made: tls.PanelCertificate) -> datetime.datetime:
    return made.not_after - tls.RENEW_BEFORE + DAY


def test_near_its_end_only_the_certificate_is_written_for_the_same_key(tmp_path: Path) -> None:
    first = tls.ensure_certificate(tmp_path, NAMES)
    assert first.made and first.new_key
    pin = first.spki_pin
    key_before = first.key_path.read_bytes()
    key_inode = first.key_path.stat().st_ino
    late = _late(first)
    renewed = tls.ensure_certificate(tmp_path, NAMES, now=late)
    assert renewed.made and not renewed.new_key
    assert "ends" in renewed.why
    assert renewed.fingerprint != first.fingerprint
    assert renewed.spki_pin == pin
    assert first.key_path.read_bytes() == key_before
    assert first.key_path.stat().st_ino == key_inode  # the key file was not even replaced
    # certificates count whole seconds
    assert abs(renewed.not_after - (late + tls.VALIDITY - pki.CLOCK_SKEW)) < datetime.timedelta(
        seconds=1
    )
    assert pki.key_matches(renewed.cert_path.read_bytes(), key_before)


def test_a_name_asked_for_later_is_added_for_the_same_key(tmp_path: Path) -> None:
    first = tls.ensure_certificate(tmp_path, NAMES)
    pin = first.spki_pin
    wider = tls.ensure_certificate(tmp_path, [*NAMES, "panel.example"])
    assert wider.made and not wider.new_key and wider.spki_pin == pin
    assert "panel.example" in selfsigned.san_names(wider.cert_path.read_bytes())


def test_a_lost_certificate_is_made_again_for_the_key_left(tmp_path: Path) -> None:
    first = tls.ensure_certificate(tmp_path, NAMES)
    pin = first.spki_pin
    first.cert_path.unlink()
    again = tls.ensure_certificate(tmp_path, NAMES)
    assert again.made and not again.new_key and again.spki_pin == pin
    assert again.why == "the certificate is missing"


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda made: made.key_path.unlink(), "its key is missing"),
        (lambda made: made.key_path.write_bytes(b"junk\n"), "unreadable"),
        (lambda made: made.key_path.write_bytes(_pem(_p256())), "its key does not match it"),
    ],
    ids=["missing", "unreadable", "mismatched"],
)
def test_a_key_that_cannot_serve_is_replaced_with_its_certificate(
    tmp_path: Path, spoil: object, why: str
) -> None:
    first = tls.ensure_certificate(tmp_path, NAMES)
    pin = first.spki_pin  # read from the file: before it is written over
    spoil(first)  # type: ignore[operator]
    again = tls.ensure_certificate(tmp_path, NAMES)
    assert again.made and again.new_key and why in again.why
    assert again.spki_pin != pin
    assert pki.key_matches(again.cert_path.read_bytes(), again.key_path.read_bytes())


def _endpoint_pin(state: Path) -> str | None:
    endpoint = enrolment.panel_endpoint(state)
    return endpoint.spki_pin if endpoint else None


def test_the_keeper_announces_a_renewal_and_keeps_the_recorded_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tls.ensure_certificate(tmp_path, NAMES)
    url, endpoint = "https://127.0.0.1:8080", "https://10.0.0.7:8080"
    enrolment.record_panel(tmp_path, enrolment.PanelEndpoint(endpoint, made.spki_pin))
    keeper = CertificateKeeper(tmp_path, NAMES, url, endpoint)
    keeper.start()
    assert keeper.check() is not None and capsys.readouterr().err == ""  # nothing due
    pin = made.spki_pin
    renewed = keeper.check(now=_late(made))
    assert renewed is not None and renewed.made and renewed.fingerprint != made.fingerprint
    assert capsys.readouterr().err == fingerprint_line(url, renewed.fingerprint) + "\n"
    assert _endpoint_pin(tmp_path) == pin == renewed.spki_pin


def test_the_keeper_records_the_new_pin_of_a_new_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tls.ensure_certificate(tmp_path, NAMES)
    endpoint = "https://10.0.0.7:8080"
    enrolment.record_panel(tmp_path, enrolment.PanelEndpoint(endpoint, made.spki_pin))
    keeper = CertificateKeeper(tmp_path, NAMES, "https://127.0.0.1:8080", endpoint)
    keeper.start()
    pin = made.spki_pin
    made.key_path.write_bytes(b"junk\n")
    renewed = keeper.check()
    assert renewed is not None and renewed.new_key
    assert _endpoint_pin(tmp_path) == renewed.spki_pin != pin
    assert renewed.fingerprint in capsys.readouterr().err


def test_the_keeper_only_reads_a_users_certificate_and_warns_near_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    key = _p256()
    start = datetime.datetime.now(datetime.UTC) - 387 * DAY  # ends in 10 days
    issued = selfsigned.self_signed_server(
        "mine", dns=["localhost"], key=key, not_before=start, valid_for=397 * DAY
    )
    cert_path, key_path = own / "cert.pem", own / "key.pem"
    cert_path.write_bytes(issued.cert_pem)
    key_path.write_bytes(issued.key_pem)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert_path, key_path)}
    keeper = CertificateKeeper(tmp_path, NAMES, "https://127.0.0.1:8080", own=(cert_path, key_path))
    keeper.start()
    with caplog.at_level(logging.WARNING):
        served = keeper.check()
    assert served is not None and served.own and not served.made
    assert "the panel does not renew it" in caplog.text
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert_path, key_path)} == before
    assert not (tmp_path / "panel-tls.pem").exists()
