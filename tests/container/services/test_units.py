"""The unit operations, called directly against a real etcd: what they store and refuse."""

from __future__ import annotations

import json

import etcd3
import pytest

from container.services import units
from container.services.cluster import Cluster
from container.services.errors import (
    RegistryError,
    UnitContentConflict,
    UnitFileError,
    UnitNotFound,
)
from tests.container.conftest import DB, KS, WEB, dump
from vulcano.records import UnitSource
from vulcano.units import content_hash


def desired(client: etcd3.Etcd3Client, name: str) -> str:
    return str(json.loads(client.get(KS.unit_spec(name))[0])["desired"])


def test_the_lifecycle_moves_the_desired_state(cluster: Cluster, client: etcd3.Etcd3Client) -> None:
    assert units.submit(cluster, [UnitSource("db.service", DB)]) == ["db.service"]
    assert desired(client, "db.service") == "inactive"
    assert units.load(cluster, [UnitSource("db.service")]) == ["db.service"]
    assert desired(client, "db.service") == "loaded"
    assert units.start(cluster, [UnitSource("db.service")]) == ["db.service"]
    assert desired(client, "db.service") == "launched"
    assert units.stop(cluster, ["db.service"]) == ["db.service"]
    assert desired(client, "db.service") == "loaded"
    assert units.unload(cluster, ["db.service"]) == ["db.service"]
    assert desired(client, "db.service") == "inactive"
    assert units.destroy(cluster, ["db.service"]) == ["db.service"]
    assert dump(client) == {}


def test_start_with_a_template_file_moves_only_its_instances(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    moved = units.start(cluster, [UnitSource("web@.service", WEB), UnitSource("web@1.service")])
    assert moved == ["web@1.service"]
    assert desired(client, "web@.service") == "inactive"
    assert desired(client, "web@1.service") == "launched"
    assert units.unit_file(cluster, "web@1.service") == WEB


def test_a_template_itself_cannot_start(cluster: Cluster) -> None:
    units.submit(cluster, [UnitSource("web@.service", WEB)])
    with pytest.raises(RegistryError, match=r"is a template: start an instance"):
        units.start(cluster, [UnitSource("web@.service")])


def test_other_content_needs_replace(cluster: Cluster, client: etcd3.Etcd3Client) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    with pytest.raises(UnitContentConflict, match=r"destroy it first or use --replace"):
        units.submit(cluster, [UnitSource("db.service", DB + "# v2\n")])
    units.start(cluster, [UnitSource("db.service", DB + "# v2\n")], replace=True)
    spec = json.loads(client.get(KS.unit_spec("db.service"))[0])
    assert spec["hash"] == content_hash(DB + "# v2\n") and spec["desired"] == "launched"
    assert client.get(KS.unit_file(content_hash(DB)))[0] is None  # nothing uses it


def test_unknown_units_are_refused_and_nothing_changes(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    before = dump(client)
    with pytest.raises(UnitNotFound, match=r"api@1.service is not submitted \(nor its template"):
        units.start(cluster, [UnitSource("db.service"), UnitSource("api@1.service")])
    with pytest.raises(UnitNotFound, match=r"unit nosuch.service is not submitted"):
        units.destroy(cluster, ["nosuch.service"])
    with pytest.raises(UnitNotFound, match=r"unit nosuch.service is not submitted"):
        units.unit_file(cluster, "nosuch.service")
    assert dump(client) == before


def test_an_invalid_unit_file_changes_nothing(cluster: Cluster, client: etcd3.Etcd3Client) -> None:
    bad = UnitSource("bad.service", "[X-Fleet]\nMachineID=abc\nGlobal=true\n")
    with pytest.raises(UnitFileError, match=r"bad.service line 3"):
        units.submit(cluster, [UnitSource("db.service", DB), bad])
    assert dump(client) == {}


def test_a_name_alone_submits_nothing_and_must_name_a_submitted_unit(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    with pytest.raises(UnitNotFound, match=r"unit db.service is not submitted, and there is no"):
        units.submit(cluster, [UnitSource("db.service")])
    assert dump(client) == {}
    units.submit(cluster, [UnitSource("db.service", DB), UnitSource("web@.service", WEB)])
    before = dump(client)
    names = [UnitSource("db.service"), UnitSource("web@1.service")]
    assert units.submit(cluster, names) == ["db.service", "web@1.service"]
    assert dump(client) == before
