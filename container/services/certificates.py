"""A TLS cluster's certificates in its etcd: renewals signed, revocations distributed.

`sign_requests` signs the CSRs the agents put at ``pki/requests/<machine>`` when their
certificates are due (`agent.credentials`), naming what the container knows of the
machine (its record's hostname, which is its node's name, and address), and writes each
certificate at ``pki/issued/<machine>``; the relay does it once a beat, `vulcano cluster
renew` on demand. `revoke_machine` revokes every certificate issued to a removed
machine's node and writes the CA's new CRL at ``pki/crl``: each remaining agent checks
it against the CA and writes it where its member's etcd reads it, on every handshake,
so the removed machine is refused from its next connection on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from container.services import clusterca, clusters
from container.services.cluster import Cluster
from container.services.clusterca import CertificateError
from container.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Renewal:
    """One request handled: signed, or refused with the reason."""

    machine_id: str
    hostname: str
    signed: bool
    reason: str = ""


def _named_tls(store: Store, cluster: Cluster) -> str | None:
    """The cluster's name when it is one this container made on TLS, else None."""
    if cluster.name is None:
        return None
    return cluster.name if clusters.get_cluster(store, cluster.name).tls else None


def sign_requests(store: Store, cluster: Cluster) -> list[Renewal]:
    """Sign every pending renewal request of the cluster's machines (none: not TLS)."""
    name = _named_tls(store, cluster)
    if name is None:
        return []
    done = []
    with cluster.registry() as registry:
        client, ks = registry.client, registry.ks
        machines = {m.id: m for m in registry.machines()}
        requests = [
            (meta.key.decode()[len(ks.certificate_requests) :], value)
            for value, meta in client.get_prefix(ks.certificate_requests)
        ]
        for machine_id, csr in requests:
            issued, _ = client.get(ks.issued_certificate(machine_id))
            if issued is not None:
                continue  # signed already; the agent has not taken it yet
            machine = machines.get(machine_id)
            if machine is None:
                done.append(Renewal(machine_id, "", False, "no such machine in the cluster"))
                continue
            try:
                cert = clusterca.sign_renewal(
                    store, name, machine.hostname, machine.public_ip or None, csr
                )
            except CertificateError as exc:
                log.warning("renewal for machine %s refused: %s", machine_id, exc)
                done.append(Renewal(machine_id, machine.hostname, False, str(exc)))
                continue
            client.put(ks.issued_certificate(machine_id), cert)
            done.append(Renewal(machine_id, machine.hostname, True))
    for renewal in done:
        if renewal.signed:
            cluster.record("certificate-renew", renewal.machine_id, detail=renewal.hostname)
    return done


@dataclass(frozen=True)
class Revocation:
    """What revoking a removed machine's certificates did."""

    hostname: str
    serials: list[int]


def revoke_machine(store: Store, cluster: Cluster, hostname: str) -> Revocation | None:
    """Revoke the certificates of the node named ``hostname`` and publish the new CRL;
    None when the cluster is not one this container made on TLS."""
    name = _named_tls(store, cluster)
    if name is None or not hostname:
        return None
    cluster.audit_ready()
    serials, crl = clusterca.revoke(store, name, hostname)
    with cluster.registry() as registry:
        registry.client.put(registry.ks.crl, crl)
    shown = ", ".join(f"{s:x}" for s in serials) or "none new"
    cluster.record("certificate-revoke", hostname, detail=f"serials {shown}")
    return Revocation(hostname, serials)
