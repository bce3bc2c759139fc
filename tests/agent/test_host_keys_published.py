"""The agent publishes its host's SSH host keys with its machine record (real etcd)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.app import build
from agent.config import ConfigError, resolve
from agent.membership.hostkeys import read_host_keys
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.records import Machine


def host_keys(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for key_type in ("ed25519", "ecdsa"):
        path = directory / f"ssh_host_{key_type}_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "root@node", "-f", str(path)],
            check=True,
            capture_output=True,
        )
        lines.append(" ".join(path.with_suffix(".pub").read_text().split()[:2]))
    return sorted(lines)


def test_every_valid_public_host_key_is_read_and_nothing_else(tmp_path: Path) -> None:
    lines = host_keys(tmp_path)
    (tmp_path / "ssh_host_broken_key.pub").write_text("ssh-ed25519 AAAAnotakey\n")
    (tmp_path / "ssh_host_rsa_key").write_text("PRIVATE: never read\n")
    assert list(read_host_keys(tmp_path)) == lines
    assert read_host_keys(tmp_path / "none") == ()


def test_the_machine_record_carries_the_host_keys(etcd: services.Etcd, tmp_path: Path) -> None:
    lines = host_keys(tmp_path / "ssh")
    config = resolve(
        {
            "etcd_endpoints": etcd.endpoint,
            "public_ip": "198.51.100.9",
            "machine_id": "keys1",
            "state_dir": str(tmp_path / "state"),
            "ttl": "3",
            "overlay": "false",
            "ssh_host_key_dir": str(tmp_path / "ssh"),
        },
        environ={},
    )
    agent = build(config, units=False)
    agent.start()
    client = connect(etcd.endpoint)
    try:
        raw, _ = client.get(Keyspace().machine("keys1"))
        assert sorted(json.loads(raw)["ssh_host_keys"]) == lines
        assert sorted(Machine.from_json(raw).ssh_host_keys) == lines
    finally:
        agent.shutdown()
        client.close()


def test_a_record_without_host_keys_reads_as_before() -> None:
    old = '{"id": "m", "hostname": "h", "public_ip": "10.0.0.1", "metadata": {}, "version": 1}'
    machine = Machine.from_json(old)
    assert machine.ssh_host_keys == ()
    assert "ssh_host_keys" not in machine.to_json()


def test_an_empty_host_key_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match="--ssh-host-key-dir: empty path"):
        resolve(
            {
                "etcd_endpoints": "http://127.0.0.1:2379",
                "public_ip": "198.51.100.9",
                "ssh_host_key_dir": " ",
            },
            environ={},
        )
