"""What this machine says about its units: their states and journal tails, in etcd.

A state is written on the machine lease, and only while its assignment exists (every
put compares the assignment's version), so a moved unit's old machine can never
overwrite the new one's report. Only what changed is written, batched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from agent import policy
from agent.units.runners.base import Runner, RunStatus
from vulcano.keyspace import Keyspace
from vulcano.records import Assignment, UnitState


class _Reporter(Protocol):
    @property
    def machine_id(self) -> str: ...
    @property
    def keyspace(self) -> Keyspace: ...

    def etcd_client(self) -> Any: ...
    def lease_id(self) -> int: ...


class UnitReports:
    """Publishes the runner's view of the assigned units (unit-states/, unit-journals/)."""

    def __init__(self, host: _Reporter, runner: Runner) -> None:
        self.host = host
        self.runner = runner
        self.ks = host.keyspace
        self.published: dict[str, str] = {}
        self._seen: dict[str, tuple[RunStatus, str, str | None]] = {}
        self._journal_seq: dict[str, int] = {}
        self._journal_at = 0.0
        self.requests = 0  # etcd requests made, for the benchmark

    @property
    def client(self) -> Any:
        return self.host.etcd_client()

    def states(self) -> dict[str, tuple[str, str]]:
        """name -> (active, sub) of every state this machine has published."""
        out = {}
        for name, value in dict(self.published).items():
            state = UnitState.from_json(value)
            out[name] = (state.active, state.sub)
        return out

    def clear(self) -> None:
        """Forget what was published (fenced: the states go with the lease)."""
        self.published = {}

    def forget(self, name: str) -> None:
        """A unit left this machine: delete the state we published."""
        self.published.pop(name, None)
        self.requests += 1
        self.client.delete(self.ks.unit_state(name, self.host.machine_id))
        self._seen.pop(name, None)
        self._journal_seq.pop(name, None)

    def _state(self, name: str, a: Assignment, st: RunStatus, sandbox_ip: str | None) -> str:
        return UnitState(
            name=name,
            machine_id=self.host.machine_id,
            load=st.load,
            active=st.active,
            sub=st.sub,
            since=st.since,
            reason=st.reason,
            hash=a.hash,
            sandbox_ip=sandbox_ip,
        ).to_json()

    def publish(
        self,
        assigned: Mapping[str, Assignment],
        problems: Mapping[str, str],
        sandbox_ips: Mapping[str, str],
    ) -> None:
        """Write every changed state; ``problems``: why a unit could not even be loaded."""
        lease = self.host.lease_id()
        t = self.client.transactions
        pending: list[tuple[str, str, str]] = []
        for name, a in sorted(assigned.items()):
            st = self.runner.status(name)
            if st.load != "loaded":
                if name not in problems:
                    continue
                st = RunStatus("error", "failed", "failed", 0.0, problems[name])
            seen = (st, a.hash, sandbox_ips.get(name))
            if self._seen.get(name) == seen and name in self.published:
                continue  # nothing new: skip building the JSON
            self._seen[name] = seen
            value = self._state(name, a, st, sandbox_ips.get(name))
            if self.published.get(name) != value:
                pending.append((name, self.ks.unit_state(name, self.host.machine_id), value))
        for i in range(0, len(pending), policy.UNIT_STATES_PER_TXN):
            chunk = pending[i : i + policy.UNIT_STATES_PER_TXN]
            self._publish_chunk(chunk, lease, t)
        now = time.monotonic()
        if now - self._journal_at >= policy.JOURNAL_PUBLISH_INTERVAL:
            self._journal_at = now
            for name in sorted(assigned):
                seq, lines = self.runner.journal(name)
                if seq != self._journal_seq.get(name, 0):
                    key = self.ks.unit_journal(name)
                    akey = self.ks.assignment(self.host.machine_id, name)
                    self.requests += 1
                    self.client.transaction(
                        compare=[t.version(akey) > 0],
                        success=[t.put(key, json.dumps({"seq": seq, "lines": lines}), lease=lease)],
                        failure=[],
                    )
                    self._journal_seq[name] = seq

    def _publish_chunk(self, chunk: list[tuple[str, str, str]], lease: int, t: Any) -> None:
        me = self.host.machine_id
        compares = [t.version(self.ks.assignment(me, n)) > 0 for n, _, _ in chunk]
        self.requests += 1
        ok, _ = self.client.transaction(
            compare=compares,
            success=[t.put(key, value, lease=lease) for _, key, value in chunk],
            failure=[],
        )
        if ok:
            for name, _, value in chunk:
                self.published[name] = value
            return
        for name, key, value in chunk:  # some assignment is gone: one by one
            self.requests += 1
            ok, _ = self.client.transaction(
                compare=[t.version(self.ks.assignment(me, name)) > 0],
                success=[t.put(key, value, lease=lease)],
                failure=[],
            )
            if ok:
                self.published[name] = value
