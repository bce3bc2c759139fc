"""Fixtures shared by every test folder: real services, started once, always stopped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from vulcano.lab import services


def require(condition: bool, why: str) -> None:
    """Skip when a real-system prerequisite is missing; in CI (CI=true) fail instead."""
    if condition:
        return
    if services.in_ci():
        pytest.fail(f"CI must run this test, but: {why}")
    pytest.skip(why)


FAILED = pytest.StashKey[bool]()
LOG_TAIL = 120  # lines of each log printed when a test fails


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember on the item whether its setup or call failed (for fixtures' teardown)."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def print_logs_if_failed(request: pytest.FixtureRequest, logs: Iterable[Path]) -> None:
    """In a fixture's teardown: the tail of each log, when the test failed (so CI's
    output says what the agents did; pytest shows it as the teardown's stdout)."""
    if not request.node.stash.get(FAILED, False):
        return
    for path in sorted(logs):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        print(f"----- {path.name} (last {LOG_TAIL} of {len(lines)} lines) -----")
        print("\n".join(lines[-LOG_TAIL:]))


def require_root() -> None:
    require(os.geteuid() == 0, "needs root for network namespaces")
    require(shutil.which("ip") is not None, "needs iproute2's ip")


@pytest.fixture(scope="session", autouse=True)
def run_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """The container's state dir for every `vulcano` a test runs without one of its own
    (the agent tests' CLI calls audit there): the run's, never the machine's
    /var/lib/vulcano. A state dir the environment names already is left alone."""
    if os.environ.get("VULCANO_STATE_DIR"):
        yield None
        return
    path = tmp_path_factory.mktemp("vulcano-state")
    path.chmod(0o700)
    os.environ["VULCANO_STATE_DIR"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("VULCANO_STATE_DIR", None)


@pytest.fixture(scope="session")
def datastore_emulator() -> Iterator[services.DatastoreEmulator]:
    """The real Cloud Datastore emulator for the whole session."""
    try:
        launcher = services.datastore_emulator_launcher()
    except FileNotFoundError as exc:
        launcher = ""
        require(False, str(exc))
    require(shutil.which("java") is not None, f"{launcher} needs java")
    with services.datastore_emulator() as emu:
        saved = {k: os.environ.get(k) for k in emu.env()}
        os.environ.update(emu.env())
        try:
            yield emu
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def datastore(datastore_emulator: services.DatastoreEmulator) -> services.DatastoreEmulator:
    """The emulator, emptied before the test."""
    datastore_emulator.reset()
    return datastore_emulator


@pytest.fixture(scope="session")
def etcd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Etcd]:
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    with services.etcd_server(tmp_path_factory.mktemp("etcd")) as member:
        yield member


@pytest.fixture
def etcd(etcd_session: services.Etcd) -> services.Etcd:
    """A real etcd 3.4 on loopback with an empty keyspace."""
    import etcd3

    host, port = etcd_session.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        client.delete_prefix("/")
    finally:
        client.close()
    return etcd_session


@pytest.fixture(scope="session")
def etcd_tls_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Etcd]:
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    with services.etcd_server(tmp_path_factory.mktemp("etcd-tls"), tls=True) as member:
        yield member


@pytest.fixture
def etcd_tls(etcd_tls_session: services.Etcd) -> services.Etcd:
    """A real etcd 3.4 on loopback requiring client certificates of its own test CA, with
    an empty keyspace: ``.endpoint`` (https://) and ``.tls`` (``.cacert``, ``.client_cert``,
    ``.client_key``, ``client_files()``)."""
    from vulcano import etcd as vulcano_etcd

    assert etcd_tls_session.tls is not None
    client = vulcano_etcd.connect(
        etcd_tls_session.endpoint, tls=etcd_tls_session.tls.client_files()
    )
    try:
        client.delete_prefix("/")
    finally:
        client.close()
    return etcd_tls_session


@pytest.fixture
def etcd_members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.EtcdCluster]:
    """A fresh real etcd 3.4 cluster of three members on loopback, for killing members."""
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    require(shutil.which("etcdctl") is not None, "needs Debian's etcd-client")
    with services.etcd_cluster(tmp_path_factory.mktemp("etcd-members")) as members:
        yield members


@pytest.fixture
def tmp_state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


# Every hypothesis campaign runs the same inputs on every run: derandomized, with no
# example database, so a CI failure reproduces and a local run cannot differ from CI.
# Each campaign states its own max_examples; the profile only fixes how they are drawn.
settings.register_profile(
    "vulcano", derandomize=True, database=None, deadline=None, print_blob=True
)
settings.load_profile("vulcano")
