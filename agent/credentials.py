"""The node's TLS credentials while the agent runs: reloaded, renewed, and the CRL kept.

Every `policy.CREDENTIALS_INTERVAL` seconds, one pass (`Credentials.check`):

- **reload**: when ``cacert``, ``cert`` or ``key`` changed on disk and still check out
  (a certificate matching its key), the agent's etcd client takes them for every new
  connection (`vulcano.etcd.FailoverClient.reload_tls`); nothing else restarts, so its
  units keep running.
- **renewal**: once 2/3 of the certificate's life has passed, the agent makes a new key
  (kept in its state dir, 0600, never sent), puts a CSR at ``pki/requests/<id>`` on its
  machine lease, and waits for the provisioning container to sign it
  (``pki/issued/<id>``). A certificate of its CA for that key is installed over the old
  files (key first; each file keeps its owner, etcd's user on Debian, since the member
  reads the same files on every handshake), then reloaded as above.
- **CRL**: the CA's CRL at ``pki/crl``, once its signature checks against ``cacert``,
  is written to ``crl-file`` when it differs, where the member's etcd reads it.

`TLSReload` is the reload on its own, for the node's other processes that reach etcd
with the same files (`vulcano-agent balancer`): the agent renews them in place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent import policy
from vulcano import certdates
from vulcano.etcdtls import TLSFileError, TLSFiles, check_files
from vulcano.keyspace import Keyspace

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# `vulcano.pki` (and `cryptography` under it, ~9 MiB) is imported only where a renewal,
# an install or a CRL check runs: most passes only read the certificate's dates.

log = logging.getLogger(__name__)

PENDING_KEY = "renewal-key.pem"


class Node(Protocol):
    """What the credentials need of the node (`agent.app._Membership` gives it)."""

    machine_id: str
    keyspace: Keyspace

    def etcd_client(self) -> Any: ...

    def lease_id(self) -> int: ...


@dataclass(frozen=True)
class _Seen:
    """What the TLS files were when last loaded: (mtime_ns, size) each."""

    stamps: tuple[tuple[int, int], ...]


def _stamps(tls: TLSFiles) -> _Seen:
    found = []
    for path in (tls.cacert, tls.cert, tls.key):
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        found.append((st.st_mtime_ns, st.st_size) if st is not None else (0, 0))
    return _Seen(tuple(found))


def write_keeping_owner(path: Path, data: bytes, *, private: bool) -> None:
    """`pki.write_pem`, then the file's owner is the old file's (root writes it for etcd)."""
    from vulcano import pki

    try:
        st = os.stat(path)
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        owner = None
    pki.write_pem(path, data, private=private)
    if owner is not None and owner != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, *owner)


class TLSReload:
    """Gives an etcd client (``client()``) the TLS files whenever they change on disk
    and still check out (a certificate matching its key)."""

    def __init__(self, client: Callable[[], Any], tls: TLSFiles) -> None:
        self.client = client
        self.tls = tls
        self._seen = _stamps(tls)
        self.reloads = 0  # how many times new files were taken (for tests and logs)

    def check(self) -> bool:
        """Give the client the files when they changed and check out; whether it did."""
        seen = _stamps(self.tls)
        if seen == self._seen:
            return False
        try:
            checked = check_files("https", self.tls.cacert, self.tls.cert, self.tls.key)
        except TLSFileError as exc:
            log.warning("TLS files changed but cannot be used yet (kept the old): %s", exc)
            return False
        assert checked is not None
        self.client().reload_tls(checked)
        self._seen = seen
        self.reloads += 1
        log.info("TLS files changed: etcd connections use them from now on")
        return True

    def every(self, interval: float, stop_event: threading.Event) -> None:
        """`check` every ``interval`` seconds until ``stop_event`` (a thread's target)."""
        while not stop_event.wait(interval):
            try:
                self.check()
            except Exception as exc:  # one failed pass waits for the next one
                log.warning("TLS files: %s", exc)


class Credentials:
    """The agent component that reloads, renews and keeps the CRL (see the module)."""

    def __init__(
        self,
        node: Node,
        tls: TLSFiles,
        state_dir: Path,
        stop_event: threading.Event,
        *,
        crl_file: Path | None = None,
        interval: float = policy.CREDENTIALS_INTERVAL,
    ) -> None:
        self.node = node
        self.tls = tls
        self.state_dir = state_dir
        self.stop_event = stop_event
        self.crl_file = crl_file
        self.interval = interval
        self._reload = TLSReload(node.etcd_client, tls)
        self._thread: threading.Thread | None = None

    @property
    def reloads(self) -> int:
        """How many times new files were taken (for tests and logs)."""
        return self._reload.reloads

    # -- component -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="credentials", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(policy.THREAD_JOIN_TIMEOUT)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # one failed pass waits for the next one
                log.warning("TLS credentials: %s", exc)

    # -- one pass ------------------------------------------------------------------------
    def check(self) -> None:
        """Reload changed files, move a renewal on, keep the CRL (one pass)."""
        self.reload_if_changed()
        if self.tls.cert is not None and self.tls.key is not None:
            self._renew()
        if self.crl_file is not None:
            self._keep_crl()

    def reload_if_changed(self) -> bool:
        """Give the etcd client the files when they changed and check out; whether it did."""
        return self._reload.check()

    def _renew(self) -> None:
        assert self.tls.cert is not None and self.tls.key is not None
        client, ks, mid = self.node.etcd_client(), self.node.keyspace, self.node.machine_id
        pending = self.state_dir / PENDING_KEY
        issued, _ = client.get(ks.issued_certificate(mid))
        if issued is not None and pending.exists():
            installed = self._install(issued, pending.read_bytes())
            # either way both keys go: a refused one is asked for again, from our key
            client.delete(ks.certificate_request(mid))
            client.delete(ks.issued_certificate(mid))
            if installed:
                pending.unlink()
                self.reload_if_changed()
            return
        from_disk = self.tls.cert.read_bytes()
        try:
            due = certdates.renewal_due(from_disk)
        except certdates.CertificateDateError:
            from vulcano import pki

            due = pki.renewal_due(from_disk)  # says what is wrong with it
        if not due:
            return
        from vulcano import pki

        if not pending.exists():
            pki.write_pem(pending, pki.new_key_pem(), private=True)
        key = pki.load_key(pending.read_bytes(), str(pending))
        request, _ = client.get(ks.certificate_request(mid))
        if request is None:
            csr = _csr(key, pki.load_cert(self.tls.cert.read_bytes()))
            lease = self.node.lease_id() or None
            client.put(ks.certificate_request(mid), csr, lease=lease)
            log.info("TLS certificate due for renewal: asked for a new one")

    def _install(self, cert_pem: bytes, key_pem: bytes) -> bool:
        """Write a renewed certificate and its key over the old ones, when they fit."""
        assert self.tls.cert is not None and self.tls.key is not None
        from vulcano import pki

        try:
            cert = pki.load_cert(cert_pem, "renewed certificate")
            if not pki.issued_by(cert_pem, self.tls.cacert.read_bytes()):
                raise pki.PKIError("not issued by our CA")
            if not pki.key_matches(cert_pem, key_pem):
                raise pki.PKIError("not for the key we asked with")
        except pki.PKIError as exc:
            log.warning("renewed certificate refused: %s", exc)
            return False
        write_keeping_owner(self.tls.key, key_pem, private=True)
        write_keeping_owner(self.tls.cert, cert_pem, private=False)
        log.info("TLS certificate renewed, valid until %s", cert.not_valid_after_utc)
        return True

    def _keep_crl(self) -> None:
        assert self.crl_file is not None
        crl, _ = self.node.etcd_client().get(self.node.keyspace.crl)
        if crl is None:
            return
        try:
            current = self.crl_file.read_bytes()
        except FileNotFoundError:
            current = b""
        if crl == current:
            return
        from vulcano import pki

        try:
            revoked = pki.crl_serials(crl, self.tls.cacert.read_bytes(), "pki/crl in etcd")
        except pki.PKIError as exc:
            log.warning("CRL not written: %s", exc)
            return
        write_keeping_owner(self.crl_file, crl, private=False)
        log.info("CRL written to %s: %d certificate(s) revoked", self.crl_file, len(revoked))


def _csr(key: ec.EllipticCurvePrivateKey, current: x509.Certificate) -> bytes:
    """A CSR for ``key`` naming the current certificate's subject (the container decides
    the rest)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(name))]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)
