"""A gunicorn config for benches: count the Datastore entity writes the worker commits.

Given to the installer as ``GUNICORN_CMD_ARGS="-c python:bench._datastore_writes"``; each
worker then appends one line ``<kind> <writes>`` per Commit RPC (every mutation: insert,
update, upsert or delete) to the file ``VULCANO_BENCH_WRITES_FILE`` names. Counting at the
RPC, below the installer's own code, counts what Datastore is asked to write.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

WRITES_FILE_VAR = "VULCANO_BENCH_WRITES_FILE"
_lock = threading.Lock()


def post_worker_init(worker: Any) -> None:
    from google.cloud.ndb import _datastore_api

    path = os.environ[WRITES_FILE_VAR]
    real = _datastore_api.make_call

    def counting(rpc_name: str, request: Any, *args: Any, **kwargs: Any) -> Any:
        if rpc_name == "commit":
            kinds: Counter[str] = Counter()
            for mutation in request.mutations:
                change = mutation.upsert or mutation.insert or mutation.update
                key = change.key if change else mutation.delete
                kinds[key.path[0].kind] += 1
            with _lock, open(path, "a", encoding="ascii") as out:
                out.writelines(f"{kind} {n}\n" for kind, n in kinds.items())
        return real(rpc_name, request, *args, **kwargs)

    _datastore_api.make_call = counting


def read_writes(path: str) -> Counter[str]:
    """The writes counted so far in ``path``, per kind."""
    counted: Counter[str] = Counter()
    if os.path.exists(path):
        with open(path, encoding="ascii") as lines:
            for line in lines:
                kind, n = line.split()
                counted[kind] += int(n)
    return counted
