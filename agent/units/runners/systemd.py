"""The systemd runner (systemd is PID 1): runtime units in /run/systemd/system driven
with systemctl, ActiveState/SubState read back with ``systemctl show``.

Units written here are runtime units: a reboot forgets them, as it forgets the machine's
lease. ``.vulcano/<unit>`` holds the content hash of each unit we loaded (what
``loaded()`` lists), so the agent never touches a unit it did not write.

Fencing does not depend on the agent staying alive: every lease confirmation arms a
transient timer (``vulcano-fence.timer``, made with systemd-run) that stops our units
when the monotonic deadline passes, and each confirmation moves it on. An agent that is
killed, stalled or stopped for good leaves the timer armed, so its units stop before
its machine lease can lapse and the engine places them elsewhere.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path

from agent import policy
from agent.units.runners.base import RunContext, RunStatus

log = logging.getLogger(__name__)

FENCE_UNIT = "vulcano-fence"
# What the fence runs (units as "$@"): a stop job, so Restart= does not bring them back,
# then SIGKILL, so a unit slow to stop cannot outlive the lease (as the built-in runner).
_FENCE_SCRIPT = 'systemctl --no-block stop -- "$@"; systemctl kill --signal=SIGKILL -- "$@"'
_CURSOR_PREFIX = "-- cursor: "


class SystemdRunner:
    """Drives systemd (PID 1): runtime units in /run/systemd/system, systemctl, journalctl."""

    def __init__(
        self, unit_dir: Path = Path("/run/systemd/system"), fence_unit: str = FENCE_UNIT
    ) -> None:
        self.unit_dir = unit_dir
        self.fence_unit = fence_unit
        self._ours = unit_dir / ".vulcano"
        self._ours.mkdir(parents=True, exist_ok=True)
        # (deadline, units) the fence timer was last armed with; None: arm on next fence()
        self._armed: tuple[float, tuple[str, ...]] | None = None
        self._fence_lock = threading.Lock()  # the fence keeper and the units' loop both call
        # unit -> (lines counted, the cursor after the last, the last lines)
        self._journals: dict[str, tuple[int, str, collections.deque[str]]] = {}

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=policy.SYSTEMCTL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            log.warning("systemd runner: %s timed out", " ".join(argv[:4]))
            return subprocess.CompletedProcess(argv, -1, "", "timed out")

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self._run(["systemctl", *args])
        if done.returncode not in (0, 3):  # 3: `is-active`-style "not active"
            log.debug("systemctl %s: %s", " ".join(args), done.stderr.strip())
        return done

    def load(self, ctx: RunContext, text: str) -> None:
        (self.unit_dir / ctx.name).write_text(text)
        dropin = self.unit_dir / f"{ctx.name}.d"
        if ctx.netns:
            dropin.mkdir(exist_ok=True)
            (dropin / "50-vulcano-sandbox.conf").write_text(
                f"[Service]\nNetworkNamespacePath=/run/netns/{ctx.netns}\n"
            )
        else:  # new content without a sandbox: an old version's drop-in must not stay
            shutil.rmtree(dropin, ignore_errors=True)
        (self._ours / ctx.name).write_text(ctx.hash)
        self._systemctl("daemon-reload")
        # A unit that failed before keeps "failed" across new content until reset.
        self._systemctl("reset-failed", ctx.name)
        self._armed = None  # the fence must cover this unit too

    def start(self, name: str) -> None:
        self._systemctl("--no-block", "start", name)

    def stop(self, name: str) -> None:
        self._systemctl("--no-block", "stop", name)

    def unload(self, name: str) -> None:
        self._systemctl("--no-block", "stop", name)
        for p in (self.unit_dir / name, self._ours / name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.unit_dir / f"{name}.d", ignore_errors=True)
        self._systemctl("daemon-reload")
        self._systemctl("reset-failed", name)
        self._armed = None
        self._journals.pop(name, None)

    def loaded(self) -> list[str]:
        return sorted(p.name for p in self._ours.iterdir())

    def status(self, name: str) -> RunStatus:
        out = self._systemctl(
            "show",
            "-p",
            "LoadState,ActiveState,SubState,StateChangeTimestampMonotonic,Result",
            "--",
            name,
        ).stdout
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            digest = (self._ours / name).read_text()
        except OSError:
            digest = ""
        mono = int(props.get("StateChangeTimestampMonotonic", "0") or 0) / 1e6
        since = time.time() - (time.monotonic() - mono) if mono else 0.0
        active = props.get("ActiveState", "inactive")
        result = props.get("Result", "success")
        return RunStatus(
            props.get("LoadState", "not-found"),
            active,
            props.get("SubState", "dead"),
            since,
            reason=result if active == "failed" else "",
            hash=digest,
        )

    def note(self, name: str, text: str) -> None:
        """A journal entry about the unit (OBJECT_SYSTEMD_UNIT=, which `journalctl -u`
        shows for root's messages)."""
        fields = f"MESSAGE=[vulcano] {name}: {text}\nOBJECT_SYSTEMD_UNIT={name}\n"
        try:
            subprocess.run(
                ["logger", "--journald"],
                input=fields,
                text=True,
                capture_output=True,
                timeout=policy.SYSTEMCTL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("systemd runner: cannot note in %s's journal: %s", name, exc)

    def journal(self, name: str) -> tuple[int, list[str]]:
        """(how many lines the unit's journal holds, its last lines), reading only the new.

        The count is the unit's own (not the journal's sequence number, which every
        unit's lines move): followers take ``count - seen`` as how many lines are new.
        The first call counts the whole of the unit's journal once; later ones read past
        the cursor of the last line seen.
        """
        count, cursor, tail = self._journals.get(
            name, (0, "", collections.deque(maxlen=policy.JOURNAL_LINES))
        )
        argv = ["journalctl", "--unit", name, "--output", "cat", "--no-pager", "--show-cursor"]
        if cursor:
            argv += ["--after-cursor", cursor]
        done = self._run(argv)
        if done.returncode != 0:
            return count, list(tail)
        lines = done.stdout.splitlines()
        if lines and lines[-1].startswith(_CURSOR_PREFIX):
            cursor = lines.pop().removeprefix(_CURSOR_PREFIX)
        tail.extend(lines)
        count += len(lines)
        self._journals[name] = (count, cursor, tail)
        return count, list(tail)

    # --- fencing ------------------------------------------------------------------------

    def fence(self, deadline: float) -> None:
        """Our units stop by themselves at the monotonic ``deadline`` (0: now)."""
        with self._fence_lock:
            units = tuple(self.loaded())
            if self._armed == (deadline, units):
                return
            remaining = deadline - time.monotonic()
            self._disarm()
            if remaining <= 0:
                if units:
                    self._run(["/bin/sh", "-c", _FENCE_SCRIPT, "fence", *units])
                self._armed = (deadline, units)
                return
            if units and not self._arm(remaining, units):
                return
            self._armed = (deadline, units)

    def _arm(self, seconds: float, units: tuple[str, ...]) -> bool:
        done = self._run(
            [
                "systemd-run",
                "--quiet",
                "--collect",
                f"--unit={self.fence_unit}",
                f"--on-active={seconds:.3f}s",
                f"--timer-property=AccuracySec={policy.SYSTEMD_FENCE_ACCURACY}",
                "--timer-property=RemainAfterElapse=no",
                "--description=Vulcano fence: stop the units of a machine whose lease lapsed",
                "/bin/sh",
                "-c",
                _FENCE_SCRIPT,
                "fence",
                *units,
            ]
        )
        if done.returncode != 0:
            log.warning("systemd runner: cannot arm the fence: %s", done.stderr.strip())
        return done.returncode == 0

    def _disarm(self) -> None:
        self._systemctl("stop", f"{self.fence_unit}.timer")
        self._systemctl("reset-failed", f"{self.fence_unit}.timer", f"{self.fence_unit}.service")

    def reap(self, timeout: float = 0.0) -> None:
        return None
