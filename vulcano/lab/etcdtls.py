"""The lab's etcd TLS mode: a test CA and the certificates it issues to members and clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from vulcano import pki
from vulcano.etcd import TLSFiles


def handshake_admitted(endpoint: str, tls: TLSFiles) -> bool:
    """Whether etcd's listener at ``endpoint`` (gRPC and HTTP share it) admits the
    certificate: over HTTPS, which tells a connection closed after the handshake at
    once (a gRPC client waits out its failover first)."""
    assert tls.cert is not None and tls.key is not None
    try:
        requests.get(
            f"{endpoint}/health",
            timeout=5,
            verify=str(tls.cacert),
            cert=(str(tls.cert), str(tls.key)),
        )
    except requests.exceptions.ConnectionError:  # SSLError among them
        return False
    return True


@dataclass
class EtcdTLS:
    """A test CA and what it issued for one etcd (or cluster): the members' server and
    peer certificates, and the clients' certificate (``client_files()``)."""

    directory: Path
    ca: pki.Issued
    cacert: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path, name: str = "vulcano-test-ca") -> EtcdTLS:
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.new_ca(name)
        cacert = directory / "ca.pem"
        pki.write_pem(cacert, ca.cert_pem, private=False)
        cert, key = pki.write_issued(directory, "client", pki.issue(ca, "client", "client"))
        return cls(directory, ca, cacert, cert, key)

    def client_files(self) -> TLSFiles:
        """What a client of this etcd gives as --cacert, --cert and --key."""
        return TLSFiles(self.cacert, self.client_cert, self.client_key)

    def issue(
        self, name: str, kind: pki.Kind, host: str = "127.0.0.1", *more_hosts: str
    ) -> tuple[Path, Path]:
        """A certificate of ``kind`` for ``host`` and ``more_hosts`` (also named
        localhost), written: its paths."""
        issued = pki.issue(self.ca, name, kind, ips=[host, *more_hosts], dns=["localhost"])
        return pki.write_issued(self.directory, name, issued)

    def requests_args(self) -> dict[str, Any]:
        """What `requests` needs to reach the member's HTTP endpoints with a client cert."""
        return {"verify": str(self.cacert), "cert": (str(self.client_cert), str(self.client_key))}

    def etcdctl_args(self) -> list[str]:
        return [
            f"--cacert={self.cacert}",
            f"--cert={self.client_cert}",
            f"--key={self.client_key}",
        ]
