"""The alert engine: each transition recorded exactly once per install, then delivered.

Per install, in its entity group: `AlertSettings` (where alerts go), `AlertState` (the
last seq seen, when the next heartbeat is due, whether the cluster is unreachable) and
one `AlertRecord` per transition. `on_summary` and the sweep each decide and record
their transitions in one Datastore transaction on the install's `AlertState`: a summary
whose seq the state has already passed records nothing, and a record's key is its
transition's own name, so two workers handed the same summary (or a retried request)
never record, and so never send, the same alert twice. Sending happens after the
commit; a record says whether every destination took it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from google.cloud import ndb

from appengine import policy
from appengine.alert_delivery import Delivery, deliver
from appengine.alert_rules import Change, Transition, reachability, transitions
from appengine.models import Install
from vulcano.heartbeat import ClusterSummary

log = logging.getLogger(__name__)

_RPC = {"timeout": policy.DATASTORE_TIMEOUT, "retries": policy.DATASTORE_RETRIES}
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}


class AlertSettings(ndb.Model):  # type: ignore[misc]
    """Where an install's alerts go; a child of its Install, id "settings"."""

    emails = ndb.TextProperty(repeated=True)
    webhooks = ndb.TextProperty(repeated=True)

    @classmethod
    def key_for(cls, install_key: ndb.Key) -> ndb.Key:
        return ndb.Key(cls, "settings", parent=install_key)

    @classmethod
    def of(cls, install_key: ndb.Key, rpc: Mapping[str, Any] = _RPC) -> AlertSettings:
        found: AlertSettings | None = cls.key_for(install_key).get(**rpc)
        return found or cls(key=cls.key_for(install_key))

    def destinations(self) -> list[str]:
        """Every destination as one string: ``mailto:<address>`` or the webhook's URL."""
        return [f"mailto:{e}" for e in self.emails] + list(self.webhooks)


class AlertState(ndb.Model):  # type: ignore[misc]
    """What the engine remembers of an install's cluster; a child of its Install, id "state"."""

    cluster = ndb.TextProperty(default="")
    last_seq = ndb.IntegerProperty(indexed=False, default=0)
    interval = ndb.FloatProperty(indexed=False, default=60.0)
    # When the cluster turns unreachable (arrival of its last heartbeat + UNREACHABLE_INTERVALS
    # of its intervals); 0 once it is, so the sweep's `0 < deadline < now` skips it.
    deadline = ndb.FloatProperty(default=0.0)
    unreachable = ndb.BooleanProperty(indexed=False, default=False)

    @classmethod
    def key_for(cls, install_key: ndb.Key) -> ndb.Key:
        return ndb.Key(cls, "state", parent=install_key)


class AlertRecord(ndb.Model):  # type: ignore[misc]
    """One transition, recorded once; a child of the install's AlertState."""

    change = ndb.TextProperty()
    cluster = ndb.TextProperty()
    subject = ndb.TextProperty()
    was = ndb.TextProperty()
    now = ndb.TextProperty()
    at = ndb.FloatProperty(indexed=False)
    detail = ndb.TextProperty(default="")  # Transition.detail (a stale balancer's error)
    created = ndb.DateTimeProperty(auto_now_add=True)
    # The destinations (AlertSettings.destinations) that have not taken it yet.
    pending = ndb.TextProperty(repeated=True)
    delivered = ndb.BooleanProperty(default=False)
    attempts = ndb.IntegerProperty(indexed=False, default=1)
    last_try = ndb.FloatProperty(indexed=False, default=0.0)

    def transition(self) -> Transition:
        return Transition(
            Change(self.change),
            self.cluster,
            self.subject,
            self.was,
            self.now,
            self.at,
            self.detail or "",
        )

    @classmethod
    def for_install(cls, install_key: ndb.Key) -> list[AlertRecord]:
        """The install's recorded alerts, oldest first."""
        records: list[AlertRecord] = cls.query(ancestor=AlertState.key_for(install_key)).fetch(
            **_RPC
        )
        return sorted(records, key=lambda r: (r.at, r.created))


def _record(state_key: ndb.Key, name: str, alert: Transition) -> AlertRecord:
    """The record of ``alert``, to be sent to the install's destinations as they are now."""
    destinations = AlertSettings.of(state_key.parent(), _TXN_RPC).destinations()
    return AlertRecord(
        key=ndb.Key(AlertRecord, name, parent=state_key),
        pending=destinations,
        delivered=not destinations,
        last_try=time.time(),
        change=alert.change.value,
        cluster=alert.cluster,
        subject=alert.subject,
        was=alert.was,
        now=alert.now,
        at=alert.at,
        detail=alert.detail,
    )


def on_summary(
    install: Install,
    previous: ClusterSummary | None,
    current: ClusterSummary,
    config: Mapping[str, Any] | None = None,
) -> list[Transition]:
    """Record and send the alerts ``current`` brings; the transitions recorded by this call.

    Called by the heartbeat API after it stored ``current`` (``previous``: the summary it
    replaced, or None). ``config`` is the app's config (SMTP); Flask's current one if None.
    """
    state_key = AlertState.key_for(install.key)
    arrived = time.time()

    def decide() -> list[AlertRecord]:
        state: AlertState = state_key.get(**_TXN_RPC) or AlertState(key=state_key)
        if current.seq <= state.last_seq:
            return []
        found = transitions(previous, current)
        found += reachability(current.cluster, state.unreachable, False, current.at)
        records = [
            _record(state_key, f"{current.seq}:{t.change.value}:{t.subject}", t) for t in found
        ]
        state.populate(
            cluster=current.cluster,
            last_seq=current.seq,
            interval=current.interval,
            deadline=arrived + policy.UNREACHABLE_INTERVALS * current.interval,
            unreachable=False,
        )
        ndb.put_multi([state, *records])
        return records

    records: list[AlertRecord] = ndb.transaction(decide, retries=policy.TRANSACTION_RETRIES)
    _send(records, config)
    return [r.transition() for r in records]


def sweep(now: float | None = None, config: Mapping[str, Any] | None = None) -> list[Transition]:
    """Turn every cluster overdue by `policy.UNREACHABLE_INTERVALS` intervals unreachable, once."""
    now = time.time() if now is None else now
    query = AlertState.query(AlertState.deadline > 0, AlertState.deadline < now)
    keys: list[ndb.Key] = query.fetch(policy.HEARTBEAT_SWEEP_BATCH, keys_only=True, **_RPC)
    found: list[Transition] = []
    for state_key in keys:

        def decide(state_key: ndb.Key = state_key) -> list[AlertRecord]:
            state: AlertState | None = state_key.get(**_TXN_RPC)
            if state is None or state.unreachable or not 0 < state.deadline < now:
                return []  # a heartbeat came, or another sweep was first
            if not _live(state_key.parent()):
                state.populate(deadline=0.0)  # its install is gone: never alert for it
                state.put()
                return []
            alerts = reachability(state.cluster, False, True, now)
            records = [_record(state_key, f"unreachable-after:{state.last_seq}", a) for a in alerts]
            state.populate(unreachable=True, deadline=0.0)
            ndb.put_multi([state, *records])
            return records

        records: list[AlertRecord] = ndb.transaction(decide, retries=policy.TRANSACTION_RETRIES)
        _send(records, config)
        found += [r.transition() for r in records]
    return found


def retry_undelivered(now: float | None = None, config: Mapping[str, Any] | None = None) -> int:
    """Send again the alerts some destination has not taken; how many were tried.

    A record is tried again `policy.ALERT_RETRY_AFTER` after its last try, at most
    `policy.ALERT_DELIVERY_ATTEMPTS` times in all, and only to the destinations still
    pending; a transaction claims it first, so two sweeps never both send it.
    """
    now = time.time() if now is None else now
    query = AlertRecord.query(AlertRecord.delivered == False)  # noqa: E712 - ndb's filter
    keys: list[ndb.Key] = query.fetch(policy.HEARTBEAT_SWEEP_BATCH, keys_only=True, **_RPC)
    tried = 0
    for key in keys:

        def claim(key: ndb.Key = key) -> AlertRecord | None:
            record: AlertRecord | None = key.get(**_TXN_RPC)
            if (
                record is None
                or record.delivered
                or record.attempts >= policy.ALERT_DELIVERY_ATTEMPTS
            ):
                return None
            if record.last_try > now - policy.ALERT_RETRY_AFTER:
                return None
            if not _live(key.parent().parent()):
                record.populate(delivered=True, pending=[])  # its install is gone
                record.put()
                return None
            record.populate(attempts=record.attempts + 1, last_try=now)
            record.put()
            return record

        record: AlertRecord | None = ndb.transaction(claim, retries=policy.TRANSACTION_RETRIES)
        if record is not None:
            _send([record], config)
            tried += 1
    return tried


def _send(records: list[AlertRecord], config: Mapping[str, Any] | None) -> None:
    """Send each record to its pending destinations; keep the ones that failed pending."""
    for record in records:
        if not record.pending:
            continue
        emails = [p.removeprefix("mailto:") for p in record.pending if p.startswith("mailto:")]
        webhooks = [p for p in record.pending if not p.startswith("mailto:")]
        outcome = deliver(record.transition(), emails, webhooks, _config(config))
        record.populate(pending=list(outcome.failed), delivered=outcome.complete)
        record.put(**_RPC)
        if not outcome.complete:
            log.warning(
                "alert %s for %s: %d destinations failed; the sweep tries again",
                record.change,
                record.cluster,
                len(outcome.failed),
            )


def send_test(install: Install, config: Mapping[str, Any] | None = None) -> Delivery:
    """Send a test alert to the install's destinations now (recorded nowhere)."""
    settings = AlertSettings.of(install.key)
    alert = Transition(
        Change.CLUSTER_REPORTING,
        install.cluster_name,
        install.cluster_name,
        "test",
        "test",
        time.time(),
    )
    return deliver(alert, settings.emails, settings.webhooks, _config(config), test=True)


def _live(install_key: ndb.Key) -> bool:
    install: Install | None = install_key.get(**_TXN_RPC)
    return install is not None and not install.expired


def delete_for_install(install_key: ndb.Key) -> int:
    """Delete an install's alert settings, state and records; how many entities went."""
    keys: list[ndb.Key] = AlertRecord.query(ancestor=AlertState.key_for(install_key)).fetch(
        keys_only=True, **_RPC
    )
    keys += [AlertState.key_for(install_key), AlertSettings.key_for(install_key)]
    ndb.delete_multi(keys, **_RPC)
    return len(keys)


def _config(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if config is not None:
        return config
    from flask import current_app

    return current_app.config
