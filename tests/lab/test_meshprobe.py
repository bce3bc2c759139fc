"""The mesh prober: each prober records when every listed peer first answered, and a
peer listed later (the targets file rewritten) is probed too."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import stop_process

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@pytest.fixture
def probers(tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    port = reserve_port()
    targets = tmp_path / "targets"
    targets.write_text("\n".join(ADDRESSES[:2]) + "\n")  # the third is listed later
    results = [tmp_path / f"result-{i}.json" for i in range(len(ADDRESSES))]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vulcano.lab.meshprobe",
                str(port),
                own,
                str(targets),
                str(result),
            ],
            cwd=ROOT,
            start_new_session=True,
        )
        for own, result in zip(ADDRESSES, results, strict=True)
    ]
    try:
        yield targets, results
    finally:
        for proc in procs:
            stop_process(proc)


def test_every_peer_answers_once_and_a_late_one_joins(
    probers: tuple[Path, list[Path]],
) -> None:
    targets, results = probers

    def heard(result: Path) -> int:
        return len(json.loads(result.read_text())) if result.exists() else 0

    # the unlisted third probes the two listed ones, which answer it but do not probe it
    wait_for(
        lambda: heard(results[0]) == heard(results[1]) == 1 and heard(results[2]) == 2,
        20,
        "the first two meet, the third hears them",
    )
    for result in results[:2]:
        assert ADDRESSES[2] not in json.loads(result.read_text())
    targets.write_text("\n".join(ADDRESSES) + "\n")
    wait_for(lambda: all(heard(r) == 2 for r in results), 20, "every prober's peers")
    for own, result in zip(ADDRESSES, results, strict=True):
        answered = json.loads(result.read_text())
        assert sorted(answered) == sorted(a for a in ADDRESSES if a != own)
        assert all(isinstance(t, float) and t <= time.monotonic() for t in answered.values())
