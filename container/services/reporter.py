"""What the relay sends: this provisioning machine's cluster, summarized once a beat.

The installer's install is for one cluster (``VULCANO_CLUSTER_NAME``). Until the
container has created it (or learned where its etcd answers) the summary says so by
listing no machines: the hosted page shows the container reporting, with nothing up yet.
When the cluster's etcd does not answer there is no summary at all, so the hosted page
sees the cluster stop reporting, which is what happened. Every summary also carries
the panel's URL and certificate fingerprint when `vulcano serve` gave them, the
fingerprint read from the certificate file for each summary (so a certificate renewed
while the panel runs is reported from the next beat on). On the
same beat a TLS cluster's renewal requests are signed (`container.services.certificates`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from container.services import certificates, clusters, monitor
from container.services.cluster import Cluster
from container.services.errors import ClusterNotFound, ClusterUnavailable, ServiceError
from container.store import Store
from vulcano import pki
from vulcano.heartbeat import ClusterSummary, PanelSummary

log = logging.getLogger(__name__)


class ClusterReporter:
    """``reporter(seq)``: the named cluster's summary number ``seq``, or None (no etcd)."""

    def __init__(
        self,
        store: Store,
        name: str,
        interval: float,
        clock: Callable[[], float] = time.time,
        panel: PanelSummary | None = None,
        panel_certificate: Path | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.interval = interval
        self.clock = clock
        self.panel = panel  # told with every summary: where the panel answers, its fingerprint
        self.panel_certificate = panel_certificate  # where the fingerprint is read, if given
        self.previous: ClusterSummary | None = None

    def __call__(self, seq: int) -> ClusterSummary | None:
        now = self.clock()
        self._read_fingerprint()
        try:
            cluster = clusters.connect(self.store, self.name)
        except ClusterNotFound:
            return ClusterSummary(self.name, seq, now, self.interval, panel=self.panel)
        try:
            with cluster:
                self._sign_renewals(cluster)
                summary = monitor.summarize(
                    cluster,
                    self.name,
                    seq=seq,
                    interval=self.interval,
                    now=now,
                    previous=self.previous,
                )
        except ClusterUnavailable as exc:
            log.warning("cluster %s: no heartbeat this time: %s", self.name, exc)
            return None
        if self.panel is not None:
            summary = dataclasses.replace(summary, panel=self.panel)
        self.previous = summary
        return summary

    def _read_fingerprint(self) -> None:
        """The panel's fingerprint as its certificate file is now (unreadable: the last one)."""
        if self.panel is None or self.panel_certificate is None:
            return
        try:
            fingerprint = pki.fingerprint(self.panel_certificate.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("the panel's certificate cannot be read, reporting the last: %s", exc)
            return
        if fingerprint != self.panel.fingerprint:
            log.info("the panel's certificate changed: reporting fingerprint %s", fingerprint)
            self.panel = dataclasses.replace(self.panel, fingerprint=fingerprint)

    def _sign_renewals(self, cluster: Cluster) -> None:
        """A TLS cluster's due certificates are renewed on the relay's beat."""
        try:
            certificates.sign_requests(self.store, cluster)
        except (ClusterUnavailable, ServiceError) as exc:
            log.warning("cluster %s: renewals wait for the next beat: %s", self.name, exc)
