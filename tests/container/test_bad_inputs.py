"""Every `vulcano` command, given every kind of bad input, against a real etcd: a clear
message naming what is wrong, a non-zero exit (2 for usage, 1 for the rest), and nothing
changed — the whole etcd keyspace and the audit log are as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest
from click.testing import CliRunner

from container.cli import main
from container.services.audit import AuditLog
from container.store import open_store
from tests.container.conftest import DB, WEB, Invoke, announce, dump
from vulcano import policy
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd

OTHER_DB = DB.replace("1000", "2000")

# (arguments, exit code, words the message must hold); files are in the test's directory
CASES: list[tuple[list[str], int, str]] = [
    # list-machines, list-units, list-unit-files
    (["list-machines", "--fields", "colour"], 2, "unknown field 'colour'"),
    (["list-machines", "--bogus"], 2, "No such option '--bogus'"),
    (["list-units", "--fields", "unit,colour"], 2, "unknown field 'colour'"),
    (["list-units", "extra"], 2, "unexpected extra argument (extra)"),
    (["list-unit-files", "--fields", "nope"], 2, "unknown field 'nope'"),
    # submit
    (["submit", "nosuch.service"], 1, "unit nosuch.service is not submitted, and there is no"),
    (["submit", "nosuch"], 1, "unit nosuch.service is not submitted, and there is no"),
    (["submit", "./nosuch.service"], 2, "./nosuch.service: No such file or directory"),
    (["submit", "api@1.service"], 1, "nor its template api@.service"),
    (["submit", "bad name!"], 2, "bad name!"),
    (["submit"], 2, "Missing argument 'UNIT...'"),
    (["submit", "FILE:invalid.service"], 1, "invalid.service"),
    (["submit", "FILE:binary.service"], 2, "not UTF-8 text"),
    (["submit", "FILE:other/db.service"], 1, "already submitted with different content"),
    (["submit", "FILE:new.service", "nosuch.service"], 1, "unit nosuch.service is not"),
    (["submit", "--bogus", "db"], 2, "No such option '--bogus'"),
    # load, start
    (["load", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["load", "--block-timeout", "soon", "db"], 2, "'soon' is not a valid float"),
    (["start", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["start", "api@1"], 1, "unit api@1.service is not submitted (nor its template"),
    (["start", "web@.service"], 1, "web@.service is a template: start an instance"),
    (["start", "FILE:new.service", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["start", "bad name!"], 2, "bad name!"),
    (["start"], 2, "Missing argument 'UNIT...'"),
    # stop, unload, destroy
    (["stop", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["stop", "db", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["stop", "--no-blok", "db"], 2, "No such option '--no-blok'"),
    (["unload", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["unload", "bad name!"], 2, "bad name!"),
    (["destroy", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["destroy", "db", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["destroy"], 2, "Missing argument 'UNIT...'"),
    # status, cat, journal
    (["status", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["status", "--lines", "many", "db"], 2, "'many' is not a valid integer"),
    (["cat", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["cat"], 2, "Missing argument 'UNIT'"),
    (["cat", "db", "web@.service"], 2, "unexpected extra argument"),
    (["journal", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["journal", "--lines", "x", "db"], 2, "'x' is not a valid integer"),
    # check add, list, remove
    (["check", "add", "nosuch", "tcp :1"], 1, "unit nosuch.service is not submitted"),
    (["check", "add", "db", "ftp :1"], 1, "unknown check kind 'ftp'"),
    (["check", "add", "db", "tcp :1 every=2s"], 1, "unknown check option 'every=2s'"),
    (["check", "add", "db"], 2, "Missing argument 'CHECK'"),
    (["check", "add", "db", "tcp :1", "--name", "a b"], 1, "--name wants letters"),
    (["check", "remove", "db", "ghost"], 1, "unit db.service has no check named ghost"),
    (["check", "remove", "db"], 2, "Missing argument 'NAME'"),
    (["check", "list", "nosuch"], 1, "unit nosuch.service is not submitted"),
    (["check", "list", "--fields", "colour"], 2, "unknown field 'colour'"),
    (["check", "frob"], 2, "No such command 'frob'"),
    # compose convert, up, down (a file refused before the cluster is asked)
    (["compose", "convert", "FILE:nosuch.yml"], 1, "nosuch.yml: No such file or directory"),
    (["compose", "convert", "FILE:bad-replicas.yml"], 1, "services.web.deploy.replicas"),
    (["compose", "up", "FILE:bad-replicas.yml"], 1, "services.web.deploy.replicas"),
    (["compose", "down", "FILE:bad-replicas.yml"], 1, "services.web.deploy.replicas"),
    (["compose", "up", "FILE:not-a-mapping.yml"], 1, "a YAML list, not a mapping"),
    (["compose", "convert", "FILE:bad-replicas.yml", "--runtime", "lxc"], 2, "--runtime"),
    (["compose", "frob"], 2, "No such command 'frob'"),
    # audit, machine remove
    (["audit", "--limit", "0"], 2, "--limit"),
    (["audit", "--unit", "bad name!"], 2, "--unit"),
    (["audit", "--since", "yesterday"], 2, "--since"),
    (["machine", "remove", "nosuch"], 1, "no machine nosuch in the cluster"),
    (["machine", "remove"], 2, "Missing argument 'ID'"),
    (["machine", "remove", "--block-timeout", "-1", "0123"], 2, "--block-timeout"),
    (["machine", "frobnicate"], 2, "No such command 'frobnicate'"),
    # cluster (the store's clusters: nothing may be half-made, nothing reaches etcd)
    (["cluster", "create", "Bad_Name", "--size", "3"], 2, "Invalid value for NAME"),
    (["cluster", "create", "ok", "--size", "0"], 2, "--size: must be between 1 and 100"),
    (["cluster", "create", "ok", "--size", "3", "--flavour", "windows"], 2, "--flavour"),
    (["cluster", "create", "ok", "--size", "3", "--network", "10.0.0.0/33"], 2, "--network"),
    (["cluster", "create", "ok", "--size", "3"], 1, "no installer: set it or give"),
    (["cluster", "show", "nosuch"], 1, "no cluster named 'nosuch'"),
    (["cluster", "delete", "nosuch"], 1, "no cluster named 'nosuch'"),
    (["cluster", "user-data", "nosuch"], 1, "no cluster named 'nosuch'"),
    (["cluster", "join-token", "nosuch"], 1, "no cluster named 'nosuch'"),
    (["cluster", "endpoints", "nosuch"], 1, "no cluster named 'nosuch'"),
    (["cluster", "frob"], 2, "No such command 'frob'"),
    # ssh, exec, ssh-forget
    (["ssh"], 2, "Missing argument 'MACHINE|UNIT'"),
    (["ssh", "nosuch", "--", "true"], 1, "nosuch"),
    (["exec", "--", "true"], 2, "give exactly one of --all, --machine ID..., --metadata k=v"),
    (["exec", "--all"], 2, "Missing argument 'COMMAND...'"),
    (["exec", "--metadata", "novalue", "--", "true"], 2, "'novalue' is not key=value"),
    (["ssh-forget"], 2, "Missing argument 'HOST'"),
    (["ssh-key", "extra"], 2, "unexpected extra argument (extra)"),
    # relay (what `vulcano serve` runs beside the panel)
    (["relay", "--cluster-name", "prod", "--interval", "0"], 2, "--interval"),
    (["relay", "--cluster-name", "prod"], 1, "VULCANO_REPORT_TOKEN_FILE is not set"),
    (["relay", "--cluster-name", "prod", "--panel-certificate", "p.pem"], 2, "needs --panel-url"),
    # panel-keeper (what `vulcano serve` runs beside the panel over HTTPS)
    (["panel-keeper", "--panel-url", "https://x"], 2, "Missing option '--state-dir'"),
    (["panel-keeper", "--state-dir", "s", "--panel-url", "u", "--interval", "0"], 2, "--interval"),
    # test-alert
    (["test-alert", "--installer-url", "ftp://x"], 1, "must be an http(s) URL with a host"),
    (["test-alert"], 1, "no installer: set it or give --installer-url"),
    # the group
    (["--cluster", "nosuch", "list-units"], 1, "no cluster named 'nosuch'"),
    (["--tunnel", "root@", "list-units"], 2, "'' is not a host name or address"),
    (["--tunnel", "root@host:99999", "list-units"], 2, "port '99999' is not 1-65535"),
    (["frobnicate"], 2, "No such command 'frobnicate'"),
    (["--prefix", "vulcano", "list-units"], 2, "prefix must start and end with '/'"),
    (["--endpoint", "ftp://x", "list-units"], 2, "scheme must be http"),
    (["--endpoint", "ftp://x", "submit", "FILE:new.service"], 2, "scheme must be http"),
]

# Every command that talks to the cluster, as a call that would work with a live etcd.
TALKERS: list[list[str]] = [
    ["list-machines"],
    ["list-units"],
    ["list-unit-files"],
    ["submit", "FILE:new.service"],
    ["load", "db"],
    ["start", "db"],
    ["stop", "db"],
    ["unload", "db"],
    ["destroy", "db"],
    ["status", "db"],
    ["cat", "db"],
    ["journal", "db"],
    ["check", "add", "db", "tcp :1"],
    ["check", "list"],
    ["check", "remove", "db", "x"],
    ["machine", "remove", "0123456789abcdef"],
    ["ssh", "0123456789abcdef", "--", "true"],
    ["exec", "--all", "--", "true"],
]

# Every command that changes something: with no state dir to audit into, it must refuse.
CHANGERS: list[list[str]] = [
    ["submit", "FILE:new.service"],
    ["load", "db"],
    ["start", "web@1"],
    ["stop", "db"],
    ["unload", "db"],
    ["destroy", "db"],
    ["check", "add", "db", "tcp :1"],
    ["check", "remove", "db", "x"],
    ["machine", "remove", "0123456789abcdef"],
]


@pytest.fixture
def seeded(client: etcd3.Etcd3Client, vulcano: Invoke, tmp_path: Path) -> Iterator[Path]:
    """A cluster with a machine, db.service started and web@.service submitted; the files."""
    (tmp_path / "db.service").write_text(DB)
    (tmp_path / "web@.service").write_text(WEB)
    (tmp_path / "new.service").write_text(DB)
    (tmp_path / "invalid.service").write_text("[X-Fleet]\nMachineID=abc\nGlobal=true\n")
    (tmp_path / "binary.service").write_bytes(b"[Service]\nExecStart=\xff\xfe\n")
    (tmp_path / "bad-replicas.yml").write_text(
        "services:\n  web:\n    image: web\n    deploy:\n      replicas: -1\n"
    )
    (tmp_path / "not-a-mapping.yml").write_text("- just\n- a list\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "db.service").write_text(OTHER_DB)
    announce(client)
    assert vulcano("start", "--no-block", str(tmp_path / "db.service")).exit_code == 0
    assert vulcano("submit", str(tmp_path / "web@.service")).exit_code == 0
    yield tmp_path


def _args(args: list[str], files: Path) -> list[str]:
    return [str(files / a[5:]) if a.startswith("FILE:") else a for a in args]


def _audited(state_dir: Path) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in AuditLog(open_store(state_dir)).entries(limit=1000)]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
    seeded: Path,
    vulcano: Invoke,
    client: etcd3.Etcd3Client,
    state_dir: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    keyspace, audited = dump(client), _audited(state_dir)
    r = vulcano(*_args(args, seeded))
    assert r.exit_code == code, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert dump(client) == keyspace
    assert _audited(state_dir) == audited


@pytest.mark.parametrize("args", TALKERS, ids=[" ".join(a) for a in TALKERS])
def test_an_endpoint_that_does_not_answer_is_named_and_nothing_changes(
    seeded: Path,
    client: etcd3.Etcd3Client,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    monkeypatch.setattr(policy, "ETCD_FAILOVER_SECONDS", 1.0)
    keyspace, audited = dump(client), _audited(state_dir)
    dead = f"http://127.0.0.1:{reserve_port()}"
    r = CliRunner().invoke(main, ["--endpoint", dead, *_args(args, seeded)])
    assert r.exit_code == 1, r.output
    assert f"etcd: no member answered at {dead}" in r.output
    assert dump(client) == keyspace
    assert _audited(state_dir) == audited


@pytest.mark.parametrize("args", CHANGERS, ids=[" ".join(a) for a in CHANGERS])
def test_a_change_that_cannot_be_audited_is_not_made(
    seeded: Path, etcd: Etcd, client: etcd3.Etcd3Client, tmp_path: Path, args: list[str]
) -> None:
    keyspace = dump(client)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    runner = CliRunner(env={"VULCANO_STATE_DIR": str(blocked)})
    r = runner.invoke(main, ["--endpoint", etcd.endpoint, *_args(args, seeded)])
    assert r.exit_code == 1, r.output
    assert f"state directory {blocked}" in r.output
    assert dump(client) == keyspace


def test_every_command_is_in_the_sweep() -> None:
    swept = {c[0][0] for c in CASES} | {a[0] for a in TALKERS}
    assert set(main.commands) - {"serve"} <= swept
