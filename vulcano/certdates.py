"""When a PEM certificate is valid, read without `cryptography` (standard library only).

The agent checks its certificate's renewal date on every credentials pass; decoding the
validity from the DER is all that needs, and keeps `cryptography` (~9 MiB) out of a
running agent until a renewal or a CRL check actually happens.
"""

from __future__ import annotations

import datetime
import ssl

from vulcano.errors import VulcanoError

# The share of a certificate's life after which its holder asks for a new one.
RENEW_AT = 2 / 3

_SEQUENCE, _UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x30, 0x17, 0x18, 0xA0


class CertificateDateError(VulcanoError, ValueError):
    """A PEM text whose certificate's validity cannot be read."""


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``at``."""
    if at + 2 > len(der):
        raise CertificateDateError("truncated DER")
    tag, length = der[at], der[at + 1]
    start = at + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(der):
            raise CertificateDateError("bad DER length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > len(der):
        raise CertificateDateError("truncated DER")
    return tag, start, start + length


def _time(tag: int, text: bytes) -> datetime.datetime:
    value = text.decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280)
        year = int(value[:2])
        value = f"{1900 + year if year >= 50 else 2000 + year}{value[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise CertificateDateError("validity is not a time")
    parsed = datetime.datetime.strptime(value, "%Y%m%d%H%M%SZ")
    return parsed.replace(tzinfo=datetime.UTC)


def validity(cert_pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    """(not before, not after) of the first certificate in ``cert_pem``, in UTC."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise CertificateDateError("not a PEM certificate") from None
    try:
        tag, start, _ = _element(der, 0)  # Certificate
        tag, at, _ = _element(der, start)  # TBSCertificate
        if tag != _SEQUENCE:
            raise CertificateDateError("not a certificate")
        fields: list[tuple[int, int, int]] = []
        while len(fields) < 5:
            tag, start, end = _element(der, at)
            if not (tag == _VERSION and not fields):
                fields.append((tag, start, end))
            at = end
        # serial, signature algorithm, issuer, validity
        tag, start, _ = fields[3]
        if tag != _SEQUENCE:
            raise CertificateDateError("no validity")
        t1, s1, e1 = _element(der, start)
        t2, s2, e2 = _element(der, e1)
        return _time(t1, der[s1:e1]), _time(t2, der[s2:e2])
    except (IndexError, ValueError) as exc:
        if isinstance(exc, CertificateDateError):
            raise
        raise CertificateDateError(f"cannot read the certificate's validity: {exc}") from None


def renewal_due(
    cert_pem: bytes, share: float = RENEW_AT, now: datetime.datetime | None = None
) -> bool:
    """Whether ``share`` of the certificate's life has passed (or it expired)."""
    start, end = validity(cert_pem)
    return (now or datetime.datetime.now(datetime.UTC)) >= start + (end - start) * share
