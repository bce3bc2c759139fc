"""The panel's certificate kept while `vulcano serve` runs: renewed in place, no restart.

gunicorn's gthread worker loads the certificate and key files for every connection it
accepts (``gunicorn.sock.ssl_context``), so a certificate written over the file is the
one the next handshake presents, and connections already open go on with the one they
began with. Every `policy.PANEL_CERT_CHECK_INTERVAL` the keeper:

- for the panel's own certificate, applies `tls.ensure_certificate`'s rules (near its
  end, unreadable, a name missing): a renewal keeps the key, so the pin nodes enrol by
  stays valid;
- for one given with ``--tls-cert``, only reads it (the user renews it: a new one
  written over the file is served from the next connection on), and warns while it is
  near its end.

Whenever the fingerprint changes the keeper prints the line `vulcano serve` prints at
its start; whenever the key's pin changes it records the enrolment endpoint's new pin
(`enrolment.record_panel`). The relay reads the fingerprint from the certificate file
for each heartbeat, so the hosted page follows.
"""

from __future__ import annotations

import datetime
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from container.panel import tls
from container.services import enrolment
from container.services.errors import SettingsError
from vulcano import pki, selfsigned

log = logging.getLogger(__name__)


def fingerprint_line(url: str, fingerprint: str) -> str:
    """What `vulcano serve` prints to stderr about the certificate it serves."""
    return f"vulcano panel: {url} certificate SHA-256 fingerprint {fingerprint}"


@dataclass
class CertificateKeeper:
    """The served certificate, checked on each call: renewed (the panel's own) or read (the user's).

    ``own`` holds the user's certificate and key paths, None for the panel's own in
    ``state_dir`` (made for ``names``). ``endpoint_url`` is where nodes reach the panel
    (the recorded enrolment endpoint), None when nothing is recorded.
    """

    state_dir: Path
    names: list[str]
    panel_url: str
    endpoint_url: str | None = None
    own: tuple[Path, Path] | None = None
    fingerprint: str = field(default="", init=False)
    pin: str = field(default="", init=False)

    @property
    def cert_path(self) -> Path:
        return self.own[0] if self.own is not None else self.state_dir / f"{tls.CERT_NAME}.pem"

    def start(self) -> None:
        """Take what is served now as known (`vulcano serve` printed and recorded it)."""
        try:
            pem = self.cert_path.read_bytes()
            self.fingerprint, self.pin = pki.fingerprint(pem), selfsigned.spki_pin(pem)
        except (OSError, ValueError) as exc:
            log.warning("the panel's certificate cannot be read now: %s", exc)

    def check(self, now: datetime.datetime | None = None) -> tls.PanelCertificate | None:
        """Renew or read the certificate, announce a change; the certificate, or None (unusable)."""
        served = self._current(now)
        if served is None:
            return None
        if self.own is not None and served.not_after - _now(now) < tls.RENEW_BEFORE:
            log.warning(
                "the certificate given with --tls-cert (%s) ends %s: the panel does not "
                "renew it; write a new one over it (it is served from the next connection on)",
                served.cert_path,
                f"{served.not_after:%Y-%m-%d}",
            )
        if served.fingerprint != self.fingerprint:
            self.fingerprint = served.fingerprint
            print(fingerprint_line(self.panel_url, served.fingerprint), file=sys.stderr, flush=True)
        pin = served.spki_pin
        if pin != self.pin:
            self.pin = pin
            if self.endpoint_url is not None:
                enrolment.record_panel(
                    self.state_dir, enrolment.PanelEndpoint(self.endpoint_url, pin)
                )
                log.info("the panel's key changed: nodes enrolling at boot are told its new pin")
        return served

    def _current(self, now: datetime.datetime | None = None) -> tls.PanelCertificate | None:
        try:
            if self.own is not None:
                return tls.own_certificate(*self.own)
            return tls.ensure_certificate(self.state_dir, self.names, now)
        except (SettingsError, OSError, ValueError) as exc:
            # the user's files half written, or the state volume unwritable: the next check
            log.warning("the panel's certificate cannot be checked now: %s", exc)
            return None


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.UTC)
