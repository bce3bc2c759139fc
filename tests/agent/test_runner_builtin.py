"""The built-in runner does what systemd would for one service, with real processes."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.units.runners.base import RunContext
from agent.units.runners.builtin import BuiltinRunner
from vulcano.lab.cluster import kill_by_pid, main_pids, pids_of
from vulcano.lab.poll import wait_for


@pytest.fixture
def marker() -> Iterator[str]:
    m = "vrun-" + secrets.token_hex(4)
    yield m
    kill_by_pid(pids_of(m))


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[BuiltinRunner]:
    r = BuiltinRunner(tmp_path / "state")
    r.fence(time.monotonic() + 3600)
    yield r
    for name in r.loaded():
        r.stop_now(name)
    r.reap(30)


def _load(runner: BuiltinRunner, name: str, text: str) -> None:
    runner.load(RunContext(name, "h" * 40, "host-a", "machine-a"), text)


def _status(runner: BuiltinRunner, name: str) -> tuple[str, str]:
    st = runner.status(name)
    return st.active, st.sub


def _journal(runner: BuiltinRunner, name: str) -> list[str]:
    return runner.journal(name)[1]


def test_exec_lines_environment_and_specifiers(
    runner: BuiltinRunner, tmp_path: Path, marker: str
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE='file value'\nexport EXPORTED=yes\n")
    work = tmp_path / "work"
    work.mkdir()
    unit = f"""[Service]
Environment="GREETING=hello world" PLAIN=1
EnvironmentFile={env_file}
EnvironmentFile=-/nonexistent/env
WorkingDirectory={work}
ExecStartPre=/bin/sh -c 'echo pre $$GREETING in $$(pwd)'
ExecStart=/bin/sh -c 'echo main %n %N %p %i %H %m $$FROM_FILE $$EXPORTED $$PLAIN; \\
  sleep 1000; :' {marker}
ExecStartPost=/bin/echo post ${{GREETING}}
ExecStop=/bin/echo stopping
"""
    _load(runner, "app@7.service", unit)
    runner.start("app@7.service")
    wait_for(lambda: _status(runner, "app@7.service") == ("active", "running"), 20, "running")
    wait_for(lambda: any("post" in line for line in _journal(runner, "app@7.service")), 10, "post")
    lines = _journal(runner, "app@7.service")
    assert f"pre hello world in {work}" in lines
    assert "main app@7.service app@7 app 7 host-a machine-a file value yes 1" in lines
    assert "post hello world" in lines
    runner.stop("app@7.service")
    wait_for(lambda: _status(runner, "app@7.service") == ("inactive", "dead"), 20, "stopped")
    assert "stopping" in _journal(runner, "app@7.service")
    assert pids_of(marker) == []


def test_oneshot_remain_after_exit_stays_active_until_stopped(runner: BuiltinRunner) -> None:
    _load(
        runner,
        "once.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo one\n"
        "ExecStart=/bin/echo two\n",
    )
    runner.start("once.service")
    wait_for(lambda: _status(runner, "once.service") == ("active", "exited"), 20, "exited")
    assert _journal(runner, "once.service")[-2:] == ["one", "two"]
    runner.stop("once.service")
    wait_for(lambda: _status(runner, "once.service") == ("inactive", "dead"), 20, "dead")


def test_oneshot_without_remain_after_exit_ends_inactive(runner: BuiltinRunner) -> None:
    _load(runner, "job.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n")
    runner.start("job.service")
    wait_for(lambda: _status(runner, "job.service") == ("inactive", "dead"), 20, "done")


def test_failing_start_pre_fails_the_unit(runner: BuiltinRunner, marker: str) -> None:
    _load(
        runner,
        "bad.service",
        f"[Service]\nExecStartPre=/bin/false\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}\n",
    )
    runner.start("bad.service")
    wait_for(lambda: _status(runner, "bad.service") == ("failed", "failed"), 20, "failed")
    assert pids_of(marker) == []
    assert runner.status("bad.service").reason == "exit-code (ExecStartPre)"


def test_ignored_start_pre_failure_and_restart_on_failure(
    runner: BuiltinRunner, tmp_path: Path
) -> None:
    count = tmp_path / "count"
    _load(
        runner,
        "flaky.service",
        "[Service]\nExecStartPre=-/bin/false\n"
        f"ExecStart=/bin/sh -c 'echo x >> {count}; [ $$(wc -l < {count}) -ge 3 ] && sleep 1000'\n"
        "Restart=on-failure\nRestartSec=100ms\n",
    )
    runner.start("flaky.service")
    wait_for(lambda: count.exists() and len(count.read_text().split()) >= 3, 20, "3 attempts")
    wait_for(lambda: _status(runner, "flaky.service") == ("active", "running"), 20, "running")
    assert len(count.read_text().split()) == 3


def test_stop_kills_the_whole_process_group(runner: BuiltinRunner, marker: str) -> None:
    _load(
        runner,
        "tree.service",
        f"[Service]\nExecStart=/bin/sh -c '(sleep 1000; :) & (sleep 1001; :) & wait' {marker}\n"
        "TimeoutStopSec=2\n",
    )
    runner.start("tree.service")
    wait_for(lambda: len(pids_of(marker)) >= 3, 20, "the process tree")
    runner.stop_now("tree.service")
    wait_for(lambda: pids_of(marker) == [], 10, "every process gone")


def test_units_outlive_the_runner_and_are_adopted(
    runner: BuiltinRunner, tmp_path: Path, marker: str
) -> None:
    _load(runner, "keep.service", f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}\n")
    runner.start("keep.service")
    wait_for(lambda: _status(runner, "keep.service") == ("active", "running"), 20, "running")
    [pid] = main_pids(marker)
    again = BuiltinRunner(tmp_path / "state")  # the agent restarted
    assert again.loaded() == ["keep.service"]
    assert _status(again, "keep.service") == ("active", "running")
    again.start("keep.service")  # already running: nothing happens
    time.sleep(0.5)
    assert pids_of(marker) == [pid]


def test_a_passed_fence_stops_units_by_themselves(runner: BuiltinRunner, marker: str) -> None:
    _load(
        runner,
        "fenced.service",
        f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}\nTimeoutStopSec=60\n",
    )
    runner.start("fenced.service")
    wait_for(lambda: pids_of(marker), 20, "running")
    runner.fence(time.monotonic() + 0.5)  # the agent stops confirming its lease
    wait_for(lambda: pids_of(marker) == [], 10, "fenced")
    st = runner.status("fenced.service")
    assert (st.active, st.sub) == ("inactive", "dead")
    assert "fenced" in st.reason


def test_missing_working_directory_is_named(runner: BuiltinRunner) -> None:
    _load(
        runner, "wd.service", "[Service]\nWorkingDirectory=/nonexistent/dir\nExecStart=/bin/true\n"
    )
    runner.start("wd.service")
    wait_for(lambda: _status(runner, "wd.service")[0] == "failed", 20, "failed")
    assert any(
        "WorkingDirectory=/nonexistent/dir does not exist" in line
        for line in _journal(runner, "wd.service")
    )


def test_unload_removes_everything(runner: BuiltinRunner, tmp_path: Path) -> None:
    _load(runner, "gone.service", "[Service]\nExecStart=/bin/true\n")
    runner.unload("gone.service")
    assert runner.loaded() == []
    assert not os.path.exists(tmp_path / "state" / "units" / "gone.service")
