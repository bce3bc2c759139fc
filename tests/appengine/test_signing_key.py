"""With no VULCANO_SECRET_KEY the installer makes one signing key, once, in Datastore.

Against the real Datastore emulator: instances (threads, then processes) that start at
the same moment race to store it and all end up with the one that was stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from flask import Flask
from google.cloud import datastore as datastore_api

from appengine import ConfigError, create_app, db, signing_key
from tests.appengine.test_installs import answers
from vulcano.lab.services import DatastoreEmulator

ROOT = Path(__file__).resolve().parents[2]
RACERS = 8
# One process starting the app: imports, one Datastore transaction. Generous: shared cores.
PROCESS_TIMEOUT = 120


def _stored(emulator: DatastoreEmulator) -> list[str]:
    client = datastore_api.Client(project=emulator.project)
    return [e["value"] for e in client.query(kind=signing_key.SIGNING_KEY_KIND).fetch()]


def _app_without_a_key(emulator: DatastoreEmulator) -> Flask:
    return create_app({"TESTING": True, "DATASTORE_PROJECT": emulator.project})


@pytest.fixture
def no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VULCANO_SECRET_KEY", raising=False)


@pytest.mark.usefixtures("no_configured_key")
def test_without_a_configured_key_the_app_makes_one_and_keeps_it(
    datastore: DatastoreEmulator,
) -> None:
    first = _app_without_a_key(datastore)
    [stored] = _stored(datastore)
    assert first.config["SECRET_KEY"] == stored
    assert len(stored) == 43  # secrets.token_urlsafe(32)
    again = _app_without_a_key(datastore)
    assert again.config["SECRET_KEY"] == stored
    assert _stored(datastore) == [stored]  # read back, not made again


@pytest.mark.usefixtures("no_configured_key")
def test_a_form_from_one_instance_is_accepted_by_another(datastore: DatastoreEmulator) -> None:
    one, other = _app_without_a_key(datastore), _app_without_a_key(datastore)
    browser = one.test_client()
    form = answers(browser)  # its CSRF token signed by the first instance
    cookie = browser.get_cookie("session")
    assert cookie is not None
    elsewhere = other.test_client()
    elsewhere.set_cookie("session", cookie.value)
    made = elsewhere.post("/installs", data=form)
    assert made.status_code == 303, made.text


def test_a_configured_key_wins_and_none_is_stored(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VULCANO_SECRET_KEY", "configured-by-the-operator")
    app = create_app({"TESTING": True, "DATASTORE_PROJECT": datastore.project})
    assert app.config["SECRET_KEY"] == "configured-by-the-operator"
    assert _stored(datastore) == []


@pytest.mark.usefixtures("no_configured_key")
def test_a_stored_key_does_not_override_a_configured_one(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _app_without_a_key(datastore).config["SECRET_KEY"]
    monkeypatch.setenv("VULCANO_SECRET_KEY", "configured-later")
    app = create_app({"TESTING": True, "DATASTORE_PROJECT": datastore.project})
    assert app.config["SECRET_KEY"] == "configured-later" != made


@pytest.mark.usefixtures("no_configured_key")
def test_other_bad_config_is_still_a_config_error(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VULCANO_VALIDATE_WITH_TOOLS", "sometimes")
    with pytest.raises(ConfigError, match="VULCANO_VALIDATE_WITH_TOOLS='sometimes'"):
        _app_without_a_key(datastore)
    assert _stored(datastore) == []


def test_threads_starting_at_once_agree_on_one_key(datastore: DatastoreEmulator) -> None:
    start = threading.Barrier(RACERS)
    got: list[str] = []
    failures: list[BaseException] = []

    def instance() -> None:
        client = db.make_client(datastore.project)  # a client of its own, as an instance
        start.wait()
        try:
            got.append(signing_key.stored_or_new(client))
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROCESS_TIMEOUT)
    assert failures == []
    [stored] = _stored(datastore)
    assert got == [stored] * RACERS


# Each process makes its Datastore client, then, told to go (a line on stdin), gets the
# key as create_app does and prints it.
_INSTANCE = """
import sys
from appengine import db, signing_key
client = db.make_client()
print("ready", flush=True)
sys.stdin.readline()
print(signing_key.stored_or_new(client), flush=True)
"""


@pytest.mark.usefixtures("no_configured_key")
def test_processes_starting_at_once_agree_on_one_key(datastore: DatastoreEmulator) -> None:
    env = {**os.environ, **datastore.env(), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _INSTANCE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS // 2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:  # all of them at once: each is waiting on this line
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        keys = [proc.communicate(timeout=PROCESS_TIMEOUT)[0].strip() for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * len(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    [stored] = _stored(datastore)
    assert keys == [stored] * len(procs)
    # and the app those processes would build signs with it
    assert _app_without_a_key(datastore).config["SECRET_KEY"] == stored
