"""Each summary reports the panel's fingerprint as its certificate file is at that beat,
so a certificate renewed while the panel runs reaches the hosted page; an unreadable
file reports the last fingerprint known."""

from __future__ import annotations

import datetime
from pathlib import Path

from container.panel import tls
from container.services.reporter import ClusterReporter
from container.store import open_store
from vulcano.heartbeat import PanelSummary

URL = "https://203.0.113.7:8080"


def test_each_summary_reads_the_fingerprint_from_the_certificate_file(tmp_path: Path) -> None:
    made = tls.ensure_certificate(tmp_path, ["localhost"])
    store = open_store(tmp_path)
    panel = PanelSummary(URL, made.fingerprint)
    reporter = ClusterReporter(store, "prod", 30.0, panel=panel, panel_certificate=made.cert_path)
    first = reporter(1)  # no cluster made yet: a summary with no machines, naming the panel
    assert first is not None and first.panel == panel
    late = made.not_after - tls.RENEW_BEFORE + datetime.timedelta(days=1)
    renewed = tls.ensure_certificate(tmp_path, ["localhost"], now=late)
    assert renewed.made and renewed.fingerprint != made.fingerprint
    second = reporter(2)
    assert second is not None and second.panel == PanelSummary(URL, renewed.fingerprint)
    made.cert_path.write_bytes(b"half written\n")
    third = reporter(3)
    assert third is not None and third.panel == PanelSummary(URL, renewed.fingerprint)
