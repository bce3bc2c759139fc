"""The panel's HTTPS certificate: made on the first start, kept on the volume, renewed.

The panel faces the internet on a cloud machine, so `vulcano serve` serves HTTPS unless
told otherwise. Without a certificate of the user's own (``--tls-cert``/``--tls-key``)
it makes a self-signed one (ECDSA P-256) in the state directory, ``panel-tls.pem`` and
``panel-tls-key.pem`` (0600), for the machine's host names and addresses, ``localhost``,
``127.0.0.1`` and ``::1``; later starts reuse it, and a new certificate is made when it
is near its end (`RENEW_BEFORE`), unreadable, or lacks a name it was asked for: at a
start, and while the panel runs (`container.panel.renewal`). No CA vouches for it: the
user checks its SHA-256 fingerprint, printed in the container's log and shown on the
hosted install page, against the one the browser shows; nodes enrolling at boot pin its
key. So a renewal keeps the key whenever it is sound (`key_to_keep`) and writes only
the certificate; a new key only when the stored one is missing, unreadable, not P-256,
or not the stored certificate's.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import itertools
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from container.services.errors import SettingsError
from vulcano import pki, selfsigned

log = logging.getLogger(__name__)

CERT_NAME = "panel-tls"  # panel-tls.pem, panel-tls-key.pem in the state directory
VALIDITY = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)
ALWAYS_NAMES = ("localhost", "127.0.0.1", "::1")
TLS_CERT_VAR = "VULCANO_PANEL_TLS_CERT"
TLS_KEY_VAR = "VULCANO_PANEL_TLS_KEY"
TLS_NAMES_VAR = "VULCANO_PANEL_TLS_NAMES"


@dataclass(frozen=True)
class PanelCertificate:
    """The certificate the panel serves and what the user checks it by."""

    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256, colon-separated upper-case hex (openssl's -fingerprint)
    not_after: datetime.datetime
    made: bool = False  # made (or renewed) by this call
    own: bool = False  # the user's (--tls-cert), not one the panel made
    new_key: bool = False  # made with a new key: its pin changed
    why: str = ""  # why it was made

    @property
    def spki_pin(self) -> str:
        return selfsigned.spki_pin(self.cert_path.read_bytes())


def is_loopback(address: str) -> bool:
    """Whether a listen address reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def machine_names(extra: Iterable[str] = ()) -> list[str]:
    """The names the made certificate is for: ``extra``, this host's name and addresses, loopback.

    Detection is best effort (the host name, what it resolves to, the addresses on the
    machine's interfaces); an address the machine does not see on itself (a cloud's
    public IP behind NAT) must be given.
    """
    names: list[str] = [n.strip() for n in extra if n.strip()]
    hostname = socket.gethostname()
    try:
        found = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except OSError:
        found = []
    # addresses first: the panel's URL names the first that is not loopback
    candidates = [*local_addresses(), *(str(info[4][0]).split("%")[0] for info in found)]
    candidates += [hostname, socket.getfqdn(hostname)]
    for name in candidates:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if _usable_dns(name):
                names.append(name)
            continue
        if not address.is_link_local:
            names.append(str(address))
    names += ALWAYS_NAMES
    return list(dict.fromkeys(names))


def local_addresses(
    fib_trie: Path = Path("/proc/net/fib_trie"), if_inet6: Path = Path("/proc/net/if_inet6")
) -> list[str]:
    """The addresses on this machine's interfaces, loopback and link-local left out.

    Read from the kernel's tables (IPv4: the LOCAL host routes; IPv6: if_inet6), which
    a container with the host's network sees as the host's.
    """
    found: list[str] = []
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL" and "|--" in previous:
            found.append(previous.split("|--")[1].strip())
    try:
        rows = if_inet6.read_text().splitlines()
    except OSError:
        rows = []
    for row in rows:
        raw = row.split()[0] if row.split() else ""
        if len(raw) == 32:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    usable = []
    for text in dict.fromkeys(found):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if not (address.is_loopback or address.is_link_local):
            usable.append(str(address))
    return usable


def _usable_dns(name: str) -> bool:
    try:
        pki.subject_alt_names(dns=[name])
    except pki.PKIError:
        return False
    return True


def _split(names: Iterable[str]) -> tuple[list[str], list[str]]:
    ips, dns = [], []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return ips, dns


def check_names(names: Iterable[str], setting: str = "--tls-name") -> list[str]:
    """``names`` when each is an IP address or a DNS name; SettingsError naming the first not."""
    checked = []
    for name in names:
        ips, dns = _split([name])
        try:
            pki.subject_alt_names(ips, dns)
        except pki.PKIError as exc:
            raise SettingsError(setting, name, "not an IP address or DNS name") from exc
        checked.append(ips[0] if ips else name)
    return checked


def ensure_certificate(
    state_dir: Path, names: Iterable[str], now: datetime.datetime | None = None
) -> PanelCertificate:
    """The panel's own certificate in ``state_dir``: the stored one, or a new one when needed.

    A new certificate is for the stored key when `key_to_keep` keeps it (only the
    certificate file is written, atomically), else for a new key (the key, then the
    certificate).
    """
    wanted = list(dict.fromkeys(names))
    cert_path = state_dir / f"{CERT_NAME}.pem"
    key_path = state_dir / f"{CERT_NAME}-key.pem"
    moment = now or datetime.datetime.now(datetime.UTC)
    with _locked(state_dir / f".{CERT_NAME}.lock"):
        why = _why_renew(cert_path, key_path, wanted, moment)
        if why is None:
            os.chmod(key_path, 0o600)  # ours: keep it private even if someone loosened it
            return _described(cert_path, key_path, made=False)
        kept = key_to_keep(_read(cert_path), _read(key_path))
        ips, dns = _split(wanted)
        issued = selfsigned.self_signed_server(
            "vulcano panel",
            ips=ips,
            dns=dns,
            valid_for=VALIDITY,
            not_before=moment - pki.CLOCK_SKEW,
            key=kept,
        )
        if kept is None:
            pki.write_issued(state_dir, CERT_NAME, issued)
        else:
            os.chmod(key_path, 0o600)
            pki.write_pem(cert_path, issued.cert_pem, private=False)
    how = "made with a new key" if kept is None else "renewed for its key"
    log.info("panel certificate %s (%s) for %s", how, why, ", ".join(wanted))
    return _described(cert_path, key_path, made=True, new_key=kept is None, why=why)


def key_to_keep(cert_pem: bytes | None, key_pem: bytes | None) -> ec.EllipticCurvePrivateKey | None:
    """The stored key a new certificate is made for, or None (a new key is needed).

    Kept when it reads as an unencrypted P-256 key (what the panel makes) and is the
    stored certificate's, or no certificate can be read to say otherwise (a missing or
    damaged certificate file does not change which key nodes pin).
    """
    if key_pem is None:
        return None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    if cert_pem is not None:
        try:
            cert = pki.load_cert(cert_pem)
        except pki.PKIError:
            return key
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            return None
    return key


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _why_renew(
    cert_path: Path, key_path: Path, wanted: list[str], now: datetime.datetime
) -> str | None:
    """Why the stored certificate cannot serve on (None: it can)."""
    if not cert_path.exists() and not key_path.exists():
        return "first start"
    if not key_path.exists():
        return "its key is missing"
    if not cert_path.exists():
        return "the certificate is missing"
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        if not pki.key_matches(cert_pem, key_pem):
            return "its key does not match it"
        not_after = pki.expiry(cert_pem)
        sans = selfsigned.san_names(cert_pem)
    except (OSError, ValueError, TypeError) as exc:
        return f"the stored one is unreadable: {exc}"
    if not_after - now < RENEW_BEFORE:
        return f"the stored one ends {not_after:%Y-%m-%d}"
    missing = [name for name in wanted if name not in sans]
    if missing:
        return f"the stored one lacks {', '.join(missing)}"
    return None


def own_certificate(cert_path: Path, key_path: Path) -> PanelCertificate:
    """The user's certificate and key, checked; SettingsError naming the flag otherwise."""
    try:
        cert_pem = cert_path.read_bytes()
    except OSError as exc:
        raise SettingsError("--tls-cert", cert_path, f"cannot be read: {exc.strerror}") from None
    try:
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise SettingsError("--tls-key", key_path, f"cannot be read: {exc.strerror}") from None
    try:
        pki.load_cert(cert_pem)
    except pki.PKIError:
        raise SettingsError("--tls-cert", cert_path, "not a PEM certificate") from None
    try:
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise SettingsError("--tls-key", key_path, "not an unencrypted PEM private key") from None
    if not pki.key_matches(cert_pem, key_pem):
        raise SettingsError("--tls-key", key_path, "is not the key of --tls-cert")
    if pki.expiry(cert_pem) <= datetime.datetime.now(datetime.UTC):
        raise SettingsError("--tls-cert", cert_path, f"expired {pki.expiry(cert_pem):%Y-%m-%d}")
    return _described(cert_path, key_path, made=False, own=True)


def _described(
    cert_path: Path,
    key_path: Path,
    made: bool,
    own: bool = False,
    new_key: bool = False,
    why: str = "",
) -> PanelCertificate:
    pem = cert_path.read_bytes()
    return PanelCertificate(
        cert_path, key_path, pki.fingerprint(pem), pki.expiry(pem), made, own, new_key, why
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two starts at once make one certificate, not a key of one and the other's certificate."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
