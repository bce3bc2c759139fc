"""The copy sampler on real processes: it sees a brief overlap, passes a clean handover,
and refuses to vouch for a window it did not sample."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from vulcano.lab.cluster import pids_of
from vulcano.lab.invariants import CopySampler, process_copies
from vulcano.lab.poll import wait_for


@pytest.fixture
def marker() -> Iterator[str]:
    word = "vinv-" + secrets.token_hex(4)
    yield word
    for pid in pids_of(word):  # by pid, only ours
        subprocess.run(["kill", "-9", str(pid)], check=False)


def copy_of(marker: str) -> subprocess.Popen[bytes]:
    """One copy of the unit: a shell whose command line carries the marker."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 1000; :", marker])
    wait_for(lambda: proc.pid in pids_of(marker), 10, "the copy running")
    return proc


def more_samples(sampler: CopySampler, count: int) -> None:
    """Wait until the sampler has taken ``count`` more samples (by count, not by time)."""
    taken = sampler.report.samples
    wait_for(lambda: sampler.report.samples >= taken + count, 10, f"{count} more samples")


def end(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(10)


def test_a_clean_handover_passes_and_both_copies_were_seen(marker: str) -> None:
    old = copy_of(marker)
    sampler = CopySampler(process_copies({"u.service": marker})).start()
    sampler.mark_fault()
    end(old)
    new = copy_of(marker)
    more_samples(sampler, 3)
    sampler.mark_gone()
    report = sampler.stop()
    end(new)
    report.check(min_samples=2, units=["u.service"])
    assert {c.split("@")[0] for c in report.seen["u.service"]} == {str(old.pid), str(new.pid)}


def test_a_brief_overlap_is_caught(marker: str) -> None:
    old = copy_of(marker)
    sampler = CopySampler(process_copies({"u.service": marker})).start()
    sampler.mark_fault()
    new = copy_of(marker)  # the new copy starts before the old one is gone
    more_samples(sampler, 3)  # an overlap shorter than the sampling interval may go unseen
    end(old)
    sampler.mark_gone()
    report = sampler.stop()
    end(new)
    assert report.overlaps and report.overlaps[0].unit == "u.service"
    with pytest.raises(AssertionError, match="more than one copy at once"):
        report.check(min_samples=1)


def test_a_window_opened_before_the_sampler_started_is_not_vouched_for(marker: str) -> None:
    sampler = CopySampler(process_copies({"u.service": marker}))
    sampler.mark_fault()  # the fault came first: samples cannot cover it
    sampler.start()
    sampler.mark_gone()
    report = sampler.stop()
    with pytest.raises(AssertionError, match="started after the fault"):
        report.check(min_samples=1)


def test_too_few_samples_a_unit_never_seen_and_a_failing_probe_all_fail() -> None:
    idle = CopySampler(lambda: {"u.service": frozenset()}).start()
    report = idle.stop()
    with pytest.raises(AssertionError, match="samples in the window"):
        report.check(min_samples=10**9)
    with pytest.raises(AssertionError, match=r"never saw a copy of u\.service"):
        report.check(min_samples=1, units=["u.service"])

    def broken() -> dict[str, frozenset[str]]:
        raise OSError("no /proc here")

    failing = CopySampler(broken).start()
    report = failing.stop()
    with pytest.raises(AssertionError, match="could not sample"):
        report.check(min_samples=0)


def test_a_copy_that_forks_is_still_one_copy(marker: str) -> None:
    # the subshell is a fork of the shell: both carry the marker, one is the other's child
    proc = subprocess.Popen(["/bin/sh", "-c", "(sleep 1000; :); :", marker])
    wait_for(lambda: len(pids_of(marker)) >= 2, 10, "the shell and its subshell")
    try:
        copies = process_copies({"u.service": marker})()
        assert [c.split("@")[0] for c in copies["u.service"]] == [str(proc.pid)]
    finally:
        end(proc)
