"""etcd over TLS: the client's files (etcdctl's --cacert, --cert, --key), checked before
anything connects, and how a TLS refusal reads apart from an absent member."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from vulcano.errors import VulcanoError


class TLSFileError(VulcanoError, ValueError):
    """A --cacert/--cert/--key we cannot use; names the flag (or variable, or file key)."""


@dataclass(frozen=True)
class TLSFiles:
    """The CA bundle that etcd's server certificates are checked against, and this
    client's certificate and key (etcdctl's --cacert, --cert, --key)."""

    cacert: Path
    cert: Path | None = None
    key: Path | None = None

    def read(self) -> tuple[bytes, bytes | None, bytes | None]:
        """The three files' bytes (None for a file not given)."""
        return (
            _read_file(self.cacert, "--cacert"),
            _read_file(self.cert, "--cert") if self.cert else None,
            _read_file(self.key, "--key") if self.key else None,
        )


TLS_FLAGS = ("--cacert", "--cert", "--key")
# a CA bundle of a few hundred certificates; anything larger is not one
TLS_FILE_MAX_BYTES = 1024 * 1024


def _read_file(path: Path, label: str) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(TLS_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise TLSFileError(f"{label} {path}: {exc.strerror or exc}") from None


def _is_certificate(pem: bytes) -> bool:
    """Whether a PEM text holds an X.509 certificate OpenSSL can load."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        return False
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem.decode("ascii"))
    except (ssl.SSLError, ValueError):
        return False
    return True


def _no_password() -> bytes:
    return b""  # an encrypted key then fails to load: etcd's clients could not use it


def check_files(
    scheme: str,
    cacert: str | Path | None,
    cert: str | Path | None,
    key: str | Path | None,
    labels: tuple[str, str, str] = TLS_FLAGS,
) -> TLSFiles | None:
    """The TLS files for endpoints of ``scheme``, each read and checked now; None for http.

    https:// needs a CA bundle (no unverified TLS); a certificate needs its key and the
    other way round; http:// endpoints with TLS files are refused (a client meant to
    use TLS must not fall back to plain text). Errors name the flag in ``labels``.
    Checked with the standard library's OpenSSL (`cryptography` is not loaded here).
    """
    given = [Path(p) if p not in (None, "") else None for p in (cacert, cert, key)]
    if scheme == "http":
        for path, label in zip(given, labels, strict=True):
            if path is not None:
                raise TLSFileError(
                    f"{label} given but the etcd endpoints are http://: use https:// URLs"
                )
        return None
    ca_path, cert_path, key_path = given
    if ca_path is None:
        raise TLSFileError(
            f"https:// etcd endpoints need {labels[0]}: the CA that signed etcd's server "
            "certificates (no unverified TLS)"
        )
    if (cert_path is None) != (key_path is None):
        missing, other = (labels[2], labels[1]) if key_path is None else (labels[1], labels[2])
        raise TLSFileError(f"{other} given without {missing}: give both or neither")
    contents = []
    for path, label in zip((ca_path, cert_path, key_path), labels, strict=True):
        if path is None:
            contents.append(b"")
            continue
        data = _read_file(path, label)
        if len(data) > TLS_FILE_MAX_BYTES:
            raise TLSFileError(f"{label} {path}: larger than {TLS_FILE_MAX_BYTES} bytes")
        contents.append(data)
    ca_pem, cert_pem, _ = contents
    if not _is_certificate(ca_pem):
        raise TLSFileError(f"{labels[0]} {ca_path}: not a PEM certificate")
    if cert_path is not None and key_path is not None:
        if not _is_certificate(cert_pem):
            raise TLSFileError(f"{labels[1]} {cert_path}: not a PEM certificate")
        try:  # OpenSSL checks the key is unencrypted and the certificate's
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                cert_path, key_path, password=_no_password
            )
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise TLSFileError(
                    f"{labels[2]} {key_path}: not the key of the certificate in {labels[1]}"
                ) from None
            raise TLSFileError(
                f"{labels[2]} {key_path}: not an unencrypted PEM private key"
            ) from None
        except OSError as exc:  # changed under us since read
            raise TLSFileError(f"{labels[2]} {key_path}: {exc.strerror or exc}") from None
    return TLSFiles(ca_path, cert_path, key_path)


def grpc_details(exc: BaseException | None, sep: str = "") -> str:
    """What gRPC said under an etcd3 exception (etcd3 raises its own inside ``except``)."""
    context = exc.__context__ if exc is not None else None
    details = getattr(context, "details", None)
    text = details() if callable(details) else None
    return f"{sep}{text}" if text else ""


# How gRPC reports a TLS handshake that failed: the server refused the certificate (or
# asked for one), or the client could not verify the server's.
_TLS_REFUSAL_MARKS = ("handshake", "ssl", "tls", "certificate", "x509", "tsi_", "verification")


def refusal_reason(details: str, tls: TLSFiles | None) -> str:
    """Why etcd and this client did not agree on TLS, as precisely as the files tell.

    ``details``: what the client's transport said (gRPC's details, Python's SSL error)."""
    details = details.lower()
    if "certificate_verify_failed" in details or "hostname verification" in details:
        return (
            "etcd's server certificate does not verify against --cacert "
            "(another CA, or not issued for this address)"
        )
    if any(mark in details for mark in ("handshake read failed", "wrong_version_number")):
        return "the member did not answer in TLS at this address (is its endpoint http://?)"
    if tls is None or tls.cert is None:
        return "etcd requires a client certificate and none was given (--cert, --key)"
    if "closed after the tls handshake" in details:  # etcd's check of its CRL does so
        return (
            f"etcd closed the connection after the TLS handshake: the client certificate "
            f"--cert {tls.cert} is revoked (etcd's --client-crl-file), or etcd refused it"
        )
    from vulcano import pki

    try:
        cert = pki.load_cert(tls.cert.read_bytes())
    except (OSError, pki.PKIError):
        return f"etcd did not accept the client certificate --cert {tls.cert} (unreadable now)"
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        return (
            f"the client certificate --cert {tls.cert} expired at "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    if cert.not_valid_before_utc > now:
        return (
            f"the client certificate --cert {tls.cert} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (is this clock right?)"
        )
    return (
        f"etcd did not accept the client certificate --cert {tls.cert} "
        f"(issued by {cert.issuer.rfc4514_string()}): not by the CA this cluster trusts"
    )


# gRPC's, and the JSON-gateway client's (`vulcano.etcdhttp`) words for it
_PLAIN_TO_TLS_MARKS = (
    "socket closed",
    "closed before etcd answered",
    "client sent an http request to an https server",
)


def plain_hint(details: str) -> str:
    """For an http:// client: what a member's closing the connection at once may mean."""
    if any(mark in details.lower() for mark in _PLAIN_TO_TLS_MARKS):
        return "; a member that wants TLS closes plain connections so: give https:// and --cacert"
    return ""


def tls_refusal(details: str) -> bool:
    """Whether an etcd client error is a TLS handshake that failed, not an absent member."""
    details = details.lower()
    return any(mark in details for mark in _TLS_REFUSAL_MARKS)
