"""The `vulcano` CLI against a real three-member etcd: every call succeeds while a member
dies and while the leader moves; with every member down the error names each endpoint."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from container.cli import main
from vulcano.lab.services import EtcdCluster

UNIT = "[Service]\nExecStart=/bin/sleep 1000\n"


def _vulcano(members: EtcdCluster, *args: str) -> Result:
    # a fresh CliRunner invocation is a fresh client that picks its first member at random
    return CliRunner().invoke(main, ["--endpoint", members.endpoints, *args])


def _submit_and_list(members: EtcdCluster, tmp_path: Path, i: int) -> None:
    unit = tmp_path / f"u{i}.service"
    unit.write_text(UNIT)
    submitted = _vulcano(members, "submit", str(unit))
    assert submitted.exit_code == 0, submitted.output
    listed = _vulcano(members, "list-unit-files", "--no-legend")
    assert listed.exit_code == 0, listed.output
    assert f"u{i}.service" in listed.output


def test_every_call_succeeds_while_a_member_is_killed(
    etcd_members: EtcdCluster, tmp_path: Path
) -> None:
    follower = next(m for m in etcd_members.members if m is not etcd_members.leader())
    for i in range(12):
        if i == 3:
            follower.kill()
        _submit_and_list(etcd_members, tmp_path, i)


def test_every_call_succeeds_while_the_leader_moves_and_dies(
    etcd_members: EtcdCluster, tmp_path: Path
) -> None:
    for i in range(12):
        if i == 3:
            leader = etcd_members.leader()
            etcd_members.move_leader(next(m for m in etcd_members.members if m is not leader))
        if i == 7:
            etcd_members.leader().kill()
        _submit_and_list(etcd_members, tmp_path, i)
    assert len(etcd_members.running()) == 2


def test_with_every_member_down_the_error_names_every_endpoint(
    etcd_members: EtcdCluster,
) -> None:
    for m in etcd_members.members:
        m.kill()
    result = _vulcano(etcd_members, "list-units")
    assert result.exit_code == 1
    for m in etcd_members.members:
        assert m.endpoint in result.output
