"""A unit command's writes as etcd transactions: split to etcd's limits, several in flight.

etcd's default --max-txn-ops is 128: it bounds a transaction's compares and its
operations, each. A unit command's batch is split into transactions that stay under it
(a destroy takes 4 operations a unit, a submit 2), and so do garbage deletes. The
transactions of one command are independent of each other (each compares only its own
units), so a few are sent at once (policy.UNIT_COMMAND_TXNS_IN_FLIGHT): etcd commits
what arrives together with one disk write, instead of one transaction per round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from vulcano import policy

TXN_MAX_OPS = 128

T = TypeVar("T")
R = TypeVar("R")


def chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def txn_chunks(
    plan: list[tuple[str, int, list[Any]]], max_ops: int = TXN_MAX_OPS
) -> Iterator[tuple[list[tuple[str, int, list[Any]]], list[Any]]]:
    """Split a unit command's plan into transactions of at most ``max_ops`` compares
    (one a unit) and ``max_ops`` operations; a unit's operations never straddle two.

    Units with the same content share one unit-file put (etcd refuses a key twice in one
    transaction).
    """
    chunk: list[tuple[str, int, list[Any]]] = []
    ops: list[Any] = []
    seen: set[bytes] = set()
    for entry in plan:
        new = [op for op in entry[2] if op.key not in seen]
        if chunk and (len(chunk) + 1 > max_ops or len(ops) + len(new) > max_ops):
            yield chunk, ops
            chunk, ops, seen = [], [], set()
            new = list(entry[2])
        chunk.append(entry)
        for op in new:
            seen.add(op.key)
            ops.append(op)
    if chunk:
        yield chunk, ops


def in_flight(
    send: Callable[[T], R], items: Sequence[T], at_once: int = policy.UNIT_COMMAND_TXNS_IN_FLIGHT
) -> list[R]:
    """``send`` every item, ``at_once`` at a time; the results in the items' order.

    The first error is raised once the sends already under way have ended; the items
    not yet sent are not sent.
    """
    if at_once <= 1 or len(items) <= 1:
        return [send(item) for item in items]
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="txn") as pool:
        futures = [pool.submit(send, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
