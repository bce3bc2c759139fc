"""A running `vulcano-agent run` over mutual TLS has not loaded gRPC, protobuf or
cryptography: its etcd client is the JSON gateway's (`vulcano.etcdhttp`), and its
certificate's renewal date is read without cryptography (`vulcano.certdates`).

What a process has loaded is read from /proc/PID/maps: each of these libraries has a
shared object of its own (gRPC's cygrpc, protobuf's upb, cryptography's Rust core), and
python-etcd3 cannot be imported without gRPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vulcano import etcdhttp
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.netns import REPO
from vulcano.lab.poll import wait_for

KS = Keyspace()
WAIT = 30.0
# where each library's shared objects sit in site-packages
NOT_LOADED = {
    "grpc (and so etcd3)": "/grpc/",
    "google.protobuf": "/google/_upb/",
    "cryptography": "/cryptography/",
    "bcrypt": "/bcrypt/",
}


def loaded_objects(pid: int) -> set[str]:
    objects = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            objects.add(fields[5])
    return objects


def test_a_running_agent_has_not_loaded_grpc_protobuf_or_cryptography(
    etcd_tls: services.Etcd, tmp_path: Path
) -> None:
    tls = etcd_tls.tls
    assert tls is not None
    log = tmp_path / "agent.log"
    argv = [
        sys.executable, "-m", "agent", "run", "--no-overlay",
        "--etcd-endpoints", etcd_tls.endpoint, "--public-ip", "198.51.100.8",
        "--machine-id", "libs-m1", "--state-dir", str(tmp_path / "state"), "--ttl", "5",
        "--ca-file", str(tls.cacert), "--cert", str(tls.client_cert), "--key", str(tls.client_key),
    ]  # fmt: skip
    client = etcdhttp.connect(etcd_tls.endpoint, tls=tls.client_files())
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    try:
        wait_for(lambda: client.get(KS.machine("libs-m1"))[0], WAIT, "the machine record")
        # the engine runs in the agent too: its term started, every component is up
        wait_for(lambda: client.get(KS.engine_leader)[0], WAIT, "the engine's leadership")
        objects = loaded_objects(proc.pid)
        # read right: the ssl extension module (TLS to etcd) is among them
        assert any(Path(o).name.startswith("_ssl.") for o in objects), sorted(objects)
        for library, mark in NOT_LOADED.items():
            found = [o for o in objects if mark in o]
            assert not found, f"the agent loaded {library}: {found}"
        assert json.loads(client.get(KS.machine("libs-m1"))[0])["public_ip"] == "198.51.100.8"
    finally:
        services.stop_process(proc)
        client.close()
    assert proc.returncode is not None
