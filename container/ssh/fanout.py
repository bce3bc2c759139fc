"""One command on many machines at once, at most `policy.EXEC_CONCURRENCY` at a time.

Every host gets an outcome, in the order the hosts were given: its exit status and
output, or why it could not be reached. One host failing never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from container import policy
from container.ssh.connection import CommandResult, connect
from container.ssh.destinations import Endpoint
from container.ssh.errors import SSHError
from container.ssh.settings import SSHSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostOutcome:
    """What happened on one host: a result, or the error that kept us from running it."""

    endpoint: Endpoint
    result: CommandResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.exit_status == 0


def run_on(endpoint: Endpoint, command: str, settings: SSHSettings) -> HostOutcome:
    """``command`` on one host; never raises for a host-side failure."""
    try:
        with connect(endpoint, settings) as connection:
            return HostOutcome(endpoint, result=connection.run(command))
    except SSHError as exc:
        return HostOutcome(endpoint, error=str(exc))
    except Exception as exc:  # one host's surprise must not cost the others their result
        log.exception("%s: unexpected error", endpoint.name)
        return HostOutcome(endpoint, error=f"{endpoint.name}: {type(exc).__name__}: {exc}")


def run_everywhere(
    endpoints: Sequence[Endpoint],
    command: str,
    settings: SSHSettings,
    concurrency: int = policy.EXEC_CONCURRENCY,
) -> list[HostOutcome]:
    """``command`` on every endpoint, ``concurrency`` at a time; outcomes in input order."""
    if not endpoints:
        return []
    workers = max(1, min(concurrency, len(endpoints)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssh-exec") as pool:
        return list(pool.map(lambda e: run_on(e, command, settings), endpoints))
