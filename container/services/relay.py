"""The heartbeat relay: one cluster summary per interval, to the hosted installer, in order.

Every interval the relay reserves the next seq (`Outbox.reserve_seq`), asks its
``summarize`` callable for the cluster's summary under that seq, queues it in the
durable outbox, and sends the outbox oldest first to ``<installer>/api/heartbeat``
with ``Authorization: Bearer <reporting token>``. An entry leaves the outbox only when:

- 200: the installer stored it (it answers only after its Datastore write);
- 409: the installer already holds that seq (our retry after an answer got lost). A 409
  whose ``last_seq`` is past the entry's means our counter went back (a new or restored
  state dir): the outbox is renumbered after it (`Outbox.renumber_after`) and sent;
- 400, 401, 413: it will never be accepted; dropped with an error in the log.

Anything else (unreachable, a timeout, 5xx, 429, ...) keeps it, and the outbox is tried
again after the answer's ``Retry-After`` (429, 503: the installer bounds heartbeats per
minute, which a backlog meets) or else after `policy.RELAY_BACKOFF`; later summaries
queue behind it, so the installer receives every seq in order, once. The reporting
token is read from the file ``VULCANO_REPORT_TOKEN_FILE`` names, which must be 0600; it
is never logged.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

import requests

from container import policy
from container.services.errors import SettingsError
from container.services.installer import INSTALLER_URL_VAR
from container.services.outbox import Outbox
from container.store.db import Store
from vulcano.heartbeat import ClusterSummary
from vulcano.policy import Backoff

log = logging.getLogger(__name__)

REPORT_TOKEN_FILE_VAR = "VULCANO_REPORT_TOKEN_FILE"  # noqa: S105 - a variable's name
HEARTBEAT_PATH = "/api/heartbeat"
# The reporting secret's shape (``<install id>.<secret>``, the installer's
# appengine/reporting.py); anything else in the file is not one.
REPORT_TOKEN_RE = re.compile(r"[A-Za-z0-9_.-]{16,160}")

Summarize = Callable[[int], ClusterSummary | None]


class Outcome(Enum):
    """What one POST of an outbox entry came to."""

    DELIVERED = "delivered"  # 200, or 409 (the installer has it already)
    BEHIND = "behind"  # 409 naming a last_seq past this one: our counter went back
    REFUSED = "refused"  # 400/401/413: dropped, it will never be accepted
    RETRY = "retry"  # unreachable, 5xx, anything else: kept


@dataclass(frozen=True)
class RelayTarget:
    """Where summaries go: the installer's URL and the install's reporting token."""

    url: str
    token: str = field(repr=False)

    @classmethod
    def configured(cls, environ: Mapping[str, str] = os.environ) -> RelayTarget:
        """The target the environment names; SettingsError saying what is missing or wrong."""
        url = environ.get(INSTALLER_URL_VAR, "").rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SettingsError(INSTALLER_URL_VAR, url, "must be an http(s) URL with a host")
        named = environ.get(REPORT_TOKEN_FILE_VAR, "")
        if not named:
            raise SettingsError(REPORT_TOKEN_FILE_VAR, "", "not set: the relay needs its token")
        return cls(url, read_token_file(Path(named)))


def read_token_file(path: Path) -> str:
    """The reporting token in ``path``; SettingsError when missing, not 0600, or no token."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SettingsError(REPORT_TOKEN_FILE_VAR, path, "no such file") from None
    except OSError as exc:
        raise SettingsError(REPORT_TOKEN_FILE_VAR, path, f"cannot be read: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SettingsError(REPORT_TOKEN_FILE_VAR, path, "is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise SettingsError(
            REPORT_TOKEN_FILE_VAR, path, f"mode {mode:04o}: must be 0600 (a secret)"
        )
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(REPORT_TOKEN_FILE_VAR, path, f"cannot be read: {exc}") from None
    if not REPORT_TOKEN_RE.fullmatch(token):
        raise SettingsError(REPORT_TOKEN_FILE_VAR, path, "does not hold a token")
    return token


def post_summary(
    session: requests.Session, target: RelayTarget, body: str, seq: int = 0
) -> tuple[Outcome, float | None]:
    """POST summary ``seq``; what the answer (or silence) means, and a number with it.

    The number is the answer's Retry-After for RETRY, the installer's last seq for BEHIND.
    """
    try:
        answer = session.post(
            f"{target.url}{HEARTBEAT_PATH}",
            data=body.encode("utf-8"),
            headers={
                "Authorization": f"Bearer {target.token}",
                "Content-Type": "application/json",
            },
            timeout=policy.RELAY_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("installer %s unreachable (%s)", target.url, type(exc).__name__)
        return Outcome.RETRY, None
    if answer.status_code == 409:
        last = _last_seq(answer)
        if last is not None and last > seq:
            return Outcome.BEHIND, float(last)
        return Outcome.DELIVERED, None
    if answer.status_code == 200:
        return Outcome.DELIVERED, None
    if answer.status_code in (400, 401, 413):
        return Outcome.REFUSED, None
    log.warning("installer %s answered %d; will retry", target.url, answer.status_code)
    return Outcome.RETRY, _retry_after(answer)


def _last_seq(answer: requests.Response) -> int | None:
    try:
        last = answer.json().get("last_seq")
    except (ValueError, AttributeError):
        return None
    return last if isinstance(last, int) and not isinstance(last, bool) else None


def _retry_after(answer: requests.Response) -> float | None:
    try:
        seconds = float(answer.headers.get("Retry-After", ""))
    except ValueError:  # absent, or an HTTP date: back off instead
        return None
    return min(max(seconds, 0.0), policy.RELAY_RETRY_AFTER_MAX)


class Relay:
    """Sends ``summarize``'s summaries to ``target`` every ``interval`` seconds, on a thread."""

    def __init__(
        self,
        store: Store,
        summarize: Summarize,
        target: RelayTarget,
        interval: float = policy.RELAY_INTERVAL,
        outbox_limit: int = policy.RELAY_OUTBOX_LIMIT,
        backoff: Backoff = policy.RELAY_BACKOFF,
    ) -> None:
        self.outbox = Outbox(store, outbox_limit)
        self.summarize = summarize
        self.target = target
        self.interval = interval
        self.backoff = backoff
        self._session = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The Retry-After of the last answer that made flush() stop, if it had one.
        self.retry_after: float | None = None

    # --- one step each, also what the tests drive -----------------------------------

    def collect(self) -> int | None:
        """Queue the cluster's summary under the next seq; the seq, or None if there was none."""
        seq = self.outbox.reserve_seq()
        try:
            summary = self.summarize(seq)
        except Exception:
            log.exception("summarizing the cluster failed; no heartbeat for seq %d", seq)
            return None
        if summary is None:
            return None
        if summary.seq != seq:
            log.error("summarize returned seq %d for %d; not sent", summary.seq, seq)
            return None
        folds = self.outbox.append(summary)
        if folds:
            log.warning(
                "heartbeat outbox full (%d): folded its oldest summaries", self.outbox.limit
            )
        return seq

    def flush(self) -> bool:
        """Send the outbox oldest first until it is empty (True) or a send must wait (False)."""
        renumbered = False
        while not self._stop.is_set():
            entry = self.outbox.oldest()
            if entry is None:
                return True
            outcome, number = post_summary(self._session, self.target, entry.summary, entry.seq)
            self.retry_after = number if outcome is Outcome.RETRY else None
            if outcome is Outcome.RETRY:
                return False
            if outcome is Outcome.BEHIND:
                if renumbered:  # behind again at once: someone else reports for the install
                    log.error("installer %s: another reporter is ahead of us", self.target.url)
                    return False
                renumbered = True
                moved = self.outbox.renumber_after(int(number or 0))
                log.warning(
                    "installer %s holds seqs up to %d, past ours: %d queued summaries renumbered",
                    self.target.url,
                    int(number or 0),
                    moved,
                )
                continue
            if outcome is Outcome.REFUSED:
                log.error(
                    "installer %s REFUSED heartbeat seq %d for good; dropped it "
                    "(check the reporting token and the container's version)",
                    self.target.url,
                    entry.seq,
                )
            self.outbox.remove(entry.seq)
        return False

    # --- the thread ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the relay is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait at most `policy.RELAY_STOP_TIMEOUT` for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(policy.RELAY_STOP_TIMEOUT)
            self._thread = None
        self._session.close()

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_collect = time.monotonic()
        next_send = next_collect
        delays: Iterator[float] | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_collect:
                try:
                    self.collect()
                except Exception:  # the store itself failed: log it, keep the thread
                    log.exception("queueing a heartbeat failed")
                # After a long pause (a suspended host), start again from now.
                next_collect = max(next_collect + self.interval, now)
            if now >= next_send:
                try:
                    delivered = self.flush()
                except Exception:
                    log.exception("sending heartbeats failed")
                    delivered = False
                if delivered:
                    delays = None
                    next_send = next_collect  # the next summary is the next thing to send
                else:
                    delays = delays or self.backoff.delays()
                    wait = next(delays) if self.retry_after is None else self.retry_after
                    next_send = time.monotonic() + wait
            self._stop.wait(max(0.0, min(next_collect, next_send) - time.monotonic()))


def relay_from_environment(
    store: Store,
    summarize: Summarize,
    environ: Mapping[str, str] = os.environ,
    interval: float = policy.RELAY_INTERVAL,
) -> Relay | None:
    """The relay `vulcano relay` runs beside the panel; None when no reporting token is set.

    SettingsError when ``VULCANO_REPORT_TOKEN_FILE`` is set but unusable (missing, not
    0600) or the installer's URL is not: a misconfigured relay stops the command.
    """
    if not environ.get(REPORT_TOKEN_FILE_VAR):
        return None
    return Relay(store, summarize, RelayTarget.configured(environ), interval)
