"""A summary's ``panel`` part: where the admin panel answers and its fingerprint."""

from __future__ import annotations

import json

import pytest

from vulcano.heartbeat import ClusterSummary, HeartbeatError, PanelSummary, panel_from_dict

FINGERPRINT = ":".join(["0A"] * 32)


@pytest.mark.parametrize(
    "url",
    ["https://203.0.113.7:8080", "https://[2001:db8::7]:8080", "https://panel.example/vulcano/"],
)
def test_panel_urls_a_user_may_give_are_taken(url: str) -> None:
    assert panel_from_dict({"url": url, "fingerprint": FINGERPRINT}) == PanelSummary(
        url, FINGERPRINT
    )


def test_a_fingerprint_is_read_in_any_case_and_kept_upper_case() -> None:
    panel = panel_from_dict({"url": "https://h:1", "fingerprint": FINGERPRINT.lower()})
    assert panel is not None and panel.fingerprint == FINGERPRINT


def test_a_plain_http_panel_needs_no_fingerprint_and_an_https_one_does() -> None:
    assert panel_from_dict({"url": "http://127.0.0.1:8080"}) == PanelSummary(
        "http://127.0.0.1:8080"
    )
    with pytest.raises(HeartbeatError) as refused:
        panel_from_dict({"url": "https://127.0.0.1:8080"})
    assert refused.value.field == "panel.fingerprint"


def test_a_summary_without_a_panel_reads_and_writes_as_before() -> None:
    plain = ClusterSummary("prod", 1, 2e9, 30.0)
    assert "panel" not in json.loads(plain.to_json())
    assert ClusterSummary.from_json(plain.to_json()).panel is None
    told = ClusterSummary("prod", 2, 2e9, 30.0, panel=PanelSummary("https://h:1", FINGERPRINT))
    assert ClusterSummary.from_json(told.to_json()) == told
