"""Many writers at once on overlapping units, and batches past etcd's transaction limit.

Several threads, each with its own connection, run the service layer's submit, start,
stop and destroy (what `vulcano` and the panel call) against one real etcd; real `vulcano`
processes race too. Every write etcd took under units/ is read back from a watch opened
before the first command, in revision order, and replayed: each must be explained by a
command that reported success (nothing duplicated, nothing from a loser), every
successful submit and start must be there (nothing lost), and the replay must end where
etcd ends. Every losing writer got one of the service layer's own errors, naming its unit.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import etcd3
import pytest

from container.services import units
from container.services.cluster import Cluster
from container.services.errors import RegistryError, UnitNotFound
from tests.container.conftest import KS
from vulcano.etcd import connect
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd, EtcdCluster
from vulcano.records import DesiredState, UnitSource, UnitSpec
from vulcano.registry import TXN_MAX_OPS
from vulcano.units import content_hash
from vulcano.watch import Change, PrefixWatch, current_revision

SENTINEL = "/vulcano-test/sentinel"
WATCH_DRAIN_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


@dataclass
class Command:
    """One command a writer ran, and how it ended."""

    writer: int
    kind: str  # submit, start, stop, destroy
    names: list[str]
    hashes: dict[str, str] = field(default_factory=dict)  # submit: name → content hash
    error: Exception | None = None


def _text(name: str, tag: str) -> str:
    return f"[Service]\nExecStart=/bin/sleep 1000\n# {name} {tag}\n"


def _run(cluster: Cluster, cmd: Command, texts: dict[str, str]) -> None:
    try:
        if cmd.kind == "submit":
            units.submit(cluster, [UnitSource(n, texts[n]) for n in cmd.names])
        elif cmd.kind == "start":
            units.start(cluster, [UnitSource(n) for n in cmd.names])
        elif cmd.kind == "stop":
            units.stop(cluster, cmd.names)
        else:
            units.destroy(cluster, cmd.names)
    except Exception as exc:  # recorded, and judged by the test
        cmd.error = exc


def _writer(endpoint: str, plan: list[tuple[Command, dict[str, str]]], go: threading.Event) -> None:
    with Cluster(endpoint) as cluster:
        go.wait()
        for cmd, texts in plan:
            _run(cluster, cmd, texts)


@dataclass
class _Replay:
    """The units as the successful commands, replayed in etcd's order, leave them."""

    state: dict[str, UnitSpec] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)


def _explain(
    replay: _Replay, change: Change, successes: dict[tuple[str, str], list[Command]]
) -> None:
    """Match one write etcd took to a successful command not yet used, and apply it."""
    name = change.key[len(KS.units) :]
    before = replay.state.get(name)

    def take(kind: str) -> bool:
        """Use up one successful ``kind`` command on this unit; False: none is left."""
        cands = successes.get((kind, name), [])
        if not cands:
            return False
        cands.pop()
        return True

    if change.value is None:
        if before is None or not take("destroy"):
            replay.unexplained.append(f"r{change.revision} delete {name}")
        replay.state.pop(name, None)
        return
    after = UnitSpec.from_json(change.value)
    kind = ""
    if before is None:
        if after.desired == DesiredState.INACTIVE and after.starts == 0:
            cands = successes.get(("submit", name), [])
            match = next((c for c in cands if c.hashes[name] == after.hash), None)
            if match is not None:
                cands.remove(match)
                kind = "submit"
    elif after.hash == before.hash:
        if after.desired == DesiredState.LAUNCHED and after.starts == before.starts + 1:
            kind = "start" if take("start") else ""
        elif (
            after.desired == DesiredState.LOADED
            and after.starts == before.starts
            and before.desired != DesiredState.LOADED
        ):
            kind = "stop" if take("stop") else ""
    if not kind:
        replay.unexplained.append(f"r{change.revision} put {name}: {before} -> {after}")
    replay.state[name] = after


def _changes_until_sentinel(watch: PrefixWatch) -> Iterator[Change]:
    while True:
        item = watch.events.get(timeout=WATCH_DRAIN_TIMEOUT)
        assert isinstance(item, list), f"the watch broke: {item}"
        for change in item:
            if change.key == SENTINEL:
                return
            yield change


def _successes(commands: list[Command]) -> dict[tuple[str, str], list[Command]]:
    """(kind, unit) → the commands that reported success on it, or changed it before
    failing (a batch whose later part lost: its error's ``done``)."""
    out: dict[tuple[str, str], list[Command]] = {}
    for cmd in commands:
        changed = cmd.names if cmd.error is None else list(getattr(cmd.error, "done", ()))
        for name in changed:
            out.setdefault((cmd.kind, name), []).append(cmd)
    return out


def _workload(seed: int) -> tuple[list[list[tuple[Command, dict[str, str]]]], list[str]]:
    """Six writers on four shared units, and one on a batch past the transaction limit.

    Every submit brings content of its own, so a unit's hash says which submit made it.
    Two of the six also start and stop the batch's units one at a time while it moves.
    """
    rng = random.Random(seed)
    shared = [f"race-{i}.service" for i in range(4)]
    batch = [f"batch-{i:03d}.service" for i in range(3 * TXN_MAX_OPS // 2)]
    plans: list[list[tuple[Command, dict[str, str]]]] = []
    for w in range(6):
        plan = []
        for k in range(14):
            kind = rng.choice(["submit", "submit", "start", "start", "stop", "destroy"])
            pool = batch if w < 2 and k % 2 and kind in ("start", "stop") else shared
            names = rng.sample(pool, rng.choice([1, 1, 2]))
            texts = {n: _text(n, f"writer {w} command {k}") for n in names}
            cmd = Command(w, kind, names, {n: content_hash(t) for n, t in texts.items()})
            plan.append((cmd, texts))
        plans.append(plan)
    texts = {n: _text(n, "batch") for n in batch}
    big = [
        (Command(6, kind, list(batch), {n: content_hash(t) for n, t in texts.items()}), texts)
        for kind in ("submit", "start", "stop", "start", "destroy")
    ]
    plans.append(big)
    return plans, batch


def _move_leader_once_writing(members: EtcdCluster, client: Any, after: int) -> None:
    """Hand etcd's leadership to another member once the writers are under way."""
    wait_for(lambda: current_revision(client) > after, 30, "the writers under way")
    leader = members.leader()
    members.move_leader(next(m for m in members.members if m is not leader))


@pytest.mark.parametrize(
    ("seed", "members"),
    [(1, 1), (2, 1), pytest.param(3, 3, id="3-three-members-leader-moved-meanwhile")],
)
def test_racing_writers_lose_nothing_duplicate_nothing_and_losers_are_told(
    request: pytest.FixtureRequest, seed: int, members: int
) -> None:
    cluster: EtcdCluster | None = None
    if members == 1:
        endpoints = request.getfixturevalue("etcd").endpoint
    else:
        cluster = request.getfixturevalue("etcd_members")
        endpoints = cluster.endpoints
    client = connect(endpoints)
    try:
        start = current_revision(client)
        plans, batch = _workload(seed)
        go = threading.Event()
        threads = [
            threading.Thread(target=_writer, args=(endpoints, plan, go), daemon=True)
            for plan in plans
        ]
        for t in threads:
            t.start()
        go.set()
        if cluster is not None:
            _move_leader_once_writing(cluster, client, start + 10)
        for t in threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a writer never finished"
        client.put(SENTINEL, "end")
        # every write etcd took, in revision order: its history from before the first
        watch = PrefixWatch(client, ["/vulcano"], start + 1)
        try:
            changes = [c for c in _changes_until_sentinel(watch) if c.key.startswith(KS.units)]
        finally:
            watch.cancel()
        commands = [cmd for plan in plans for cmd, _ in plan]

        # the batch went through whole: past the transaction limit, racing single writers
        assert all(c.error is None for c in commands if c.writer == 6), [
            (c.kind, c.error) for c in commands if c.writer == 6
        ]
        # losers were told so, with the service layer's own errors naming their unit
        losers = [c for c in commands if c.error is not None]
        assert losers, "no command lost a race: the workload proves nothing"
        for c in losers:
            assert isinstance(c.error, RegistryError | UnitNotFound), repr(c.error)
            assert any(n in str(c.error) for n in c.names), str(c.error)
            done = getattr(c.error, "done", ())
            assert set(done) <= set(c.names)
            if done:
                assert "changed before that: " + done[0] in str(c.error)
        # a losing submit wrote nothing: its content is in no write etcd took
        lost_hashes = {(n, c.hashes[n]) for c in losers if c.kind == "submit" for n in c.names}
        written = {
            (ch.key[len(KS.units) :], UnitSpec.from_json(ch.value).hash)
            for ch in changes
            if ch.value is not None
        }
        assert not lost_hashes & written

        successes = _successes(commands)
        replay = _Replay()
        for change in changes:
            _explain(replay, change, successes)
        assert replay.unexplained == []  # nothing duplicated, nothing from a loser
        # nothing lost: every successful submit made its unit, every start counted
        assert [k for k, v in successes.items() if v and k[0] in ("submit", "start")] == []
        final = {
            m.key.decode()[len(KS.units) :]: UnitSpec.from_json(v)
            for v, m in client.get_prefix(KS.units)
        }
        assert final == replay.state
        assert not set(final) & set(batch)  # the batch's destroy took every unit away
        assert len({c.kind for c in commands if c.error is None}) == 4
    finally:
        client.close()


def _cli(endpoint: str, state_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "VULCANO_STATE_DIR": str(state_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "container", "--endpoint", endpoint, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=CLI_TIMEOUT)
    return proc.returncode, out


def test_vulcano_processes_racing_one_new_unit_one_wins_and_every_start_counts(
    etcd: Etcd, tmp_path: Path, client: etcd3.Etcd3Client
) -> None:
    files = []
    for i in range(4):
        path = tmp_path / f"w{i}" / "one.service"
        path.parent.mkdir()
        path.write_text(_text("one.service", f"process {i}"))
        files.append(path)
    procs = [_cli(etcd.endpoint, tmp_path / f"s{i}", "submit", str(f)) for i, f in enumerate(files)]
    results = [_finish(p) for p in procs]
    winners = [i for i, (code, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    for i, (code, out) in enumerate(results):
        if i not in winners:
            assert code == 1, out
            assert "one.service is already submitted with different content" in out
    stored = UnitSpec.from_json(client.get(KS.unit_spec("one.service"))[0])
    assert stored.hash == content_hash(files[winners[0]].read_text())

    procs = [
        _cli(etcd.endpoint, tmp_path / f"s{i}", "start", "--no-block", "one.service")
        for i in range(4)
    ]
    results = [_finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    spec = json.loads(client.get(KS.unit_spec("one.service"))[0])
    assert spec["starts"] == 4 and spec["desired"] == "launched"


def test_instances_started_while_their_template_is_destroyed_never_lack_content(
    etcd: Etcd, client: etcd3.Etcd3Client
) -> None:
    template = "[Service]\nExecStart=/bin/sleep 1000 %i\n"
    outcomes: list[Exception | None] = []

    def start_instances(cluster: Cluster, round_: int, go: threading.Event) -> None:
        go.wait()
        for k in range(4):
            try:
                units.start(cluster, [UnitSource(f"t@{round_}{k}.service")])
                outcomes.append(None)
            except Exception as exc:  # judged below
                outcomes.append(exc)

    def destroy_template(cluster: Cluster, go: threading.Event) -> None:
        go.wait()
        units.destroy(cluster, ["t@.service"])

    with Cluster(etcd.endpoint) as starter, Cluster(etcd.endpoint) as destroyer:
        for round_ in range(25):
            units.submit(destroyer, [UnitSource("t@.service", template)])
            with starter.registry():  # both connections open before the race
                pass
            go = threading.Event()
            threads = [
                threading.Thread(target=start_instances, args=(starter, round_, go)),
                threading.Thread(target=destroy_template, args=(destroyer, go)),
            ]
            for t in threads:
                t.start()
            go.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive()
            for value, _ in client.get_prefix(KS.units):
                spec = UnitSpec.from_json(value)
                assert client.get(KS.unit_file(spec.hash))[0] is not None, spec.name
            instances = [UnitSpec.from_json(v).name for v, _ in client.get_prefix(KS.units)]
            if instances:
                units.destroy(destroyer, instances)
    for exc in outcomes:
        assert exc is None or isinstance(exc, UnitNotFound), repr(exc)
    assert None in outcomes, "no instance was ever started: nothing was checked"


def test_a_batch_that_loses_its_last_part_says_exactly_what_it_changed(
    etcd: Etcd, client: etcd3.Etcd3Client
) -> None:
    """A start of more units than one transaction holds, racing a destroy of its last one.

    Whichever way each round goes, what etcd holds is what the start said it did: all of
    it, or (the destroy landing between its transactions) the units in its error's
    ``done``, every one of which is launched, and none of the others. In the held rounds
    the start's transaction that carries the last unit waits until the destroy is done
    (the start's transactions go several at once, so a free race rarely lands between
    them); in the free rounds either outcome may come.
    """
    names = [f"b{i:04d}.service" for i in range(6 * TXN_MAX_OPS + 8)]
    last = names[-1]
    last_key = KS.unit_spec(last).encode()
    partial = 0
    with Cluster(etcd.endpoint) as starter, Cluster(etcd.endpoint) as destroyer:
        with starter.registry() as registry:
            etcd_client = registry.client
        send = etcd_client.transaction
        destroyed = threading.Event()

        def held(compare: list[Any], success: list[Any], failure: list[Any]) -> Any:
            puts = [op for op in success if isinstance(op, etcd3.transactions.Put)]
            if any(op.key in (last_key, last_key.decode()) for op in puts):
                destroyed.wait(timeout=WATCH_DRAIN_TIMEOUT)
            return send(compare=compare, success=success, failure=failure)

        for round_ in range(4):
            hold = round_ % 2 == 0
            destroyed.clear()
            units.submit(starter, [UnitSource(n, _text(n, "b")) for n in names])
            revision = current_revision(client)
            watch = PrefixWatch(client, [KS.unit_spec(names[0])], revision + 1)
            result: list[Exception | None] = []

            def start(result: list[Exception | None] = result) -> None:
                try:
                    units.start(starter, [UnitSource(n) for n in names])
                    result.append(None)
                except Exception as exc:  # judged below
                    result.append(exc)

            t = threading.Thread(target=start)
            etcd_client.transaction = held if hold else send
            t.start()
            try:
                watch.events.get(timeout=WATCH_DRAIN_TIMEOUT)  # its first transaction landed
                with contextlib.suppress(UnitNotFound):
                    units.destroy(destroyer, [last])
            finally:
                destroyed.set()
                t.join(timeout=60)
                watch.cancel()
                etcd_client.transaction = send
            [error] = result
            launched = {
                UnitSpec.from_json(v).name
                for v, _ in client.get_prefix(KS.units)
                if UnitSpec.from_json(v).desired == DesiredState.LAUNCHED
            }
            if error is None:
                assert not hold, "the destroy was held to land between, yet the start all landed"
                assert launched | {last} == set(names)
            else:
                assert isinstance(error, UnitNotFound), repr(error)
                assert f"unit {last} was destroyed meanwhile" in str(error)
                assert launched == set(error.done)
                assert set(error.done) < set(names) - {last}
                if hold:  # every transaction but the last unit's landed
                    assert set(error.done) == set(names[: 6 * TXN_MAX_OPS])
                partial += int(bool(error.done))
            units.destroy(starter, [n for n in names if n != last])
            with contextlib.suppress(UnitNotFound):
                units.destroy(destroyer, [last])
    assert partial, "the destroy never landed between the start's transactions"
