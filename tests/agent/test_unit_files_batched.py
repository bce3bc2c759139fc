"""agent/units/unit_files.py against a real etcd: many unit files, few requests."""

from __future__ import annotations

from typing import Any

from agent.units.unit_files import UnitFiles
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab import services


def test_many_unit_files_are_read_a_hundred_a_request_and_then_from_memory(
    etcd: services.Etcd,
) -> None:
    ks = Keyspace()
    client: Any = connect(etcd.endpoint)
    try:
        digests = [f"{i:064x}" for i in range(250)]
        for d in digests:
            client.put(ks.unit_file(d), f"[Service]\nExecStart=/bin/true {d}\n")
        files = UnitFiles(lambda: client, ks)
        files.prefetch([*digests, "f" * 64])  # one of them is not in etcd
        assert files.requests == 3  # 251 reads, at most 100 a transaction
        assert files.text(digests[7]) == f"[Service]\nExecStart=/bin/true {digests[7]}\n"
        files.prefetch(digests)
        assert files.requests == 3  # nothing read twice
        assert files.text("f" * 64) is None  # a missing file is looked up, and is missing
        assert files.requests == 4
    finally:
        client.close()
