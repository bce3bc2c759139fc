"""The units pages on a simulated cluster: units really placed, started and printing."""

from __future__ import annotations

import html
import io

import etcd3
import pytest
from flask import Flask

from container.services.cluster import Cluster
from container.store import Store
from tests.container.panel.conftest import Browser, add_cluster
from tests.container.panel.lab import Lab
from vulcano.keyspace import Keyspace
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import UnitState

HELLO = (
    "[Service]\nExecStart=/bin/sh -c 'echo hello from %n; exec sleep 1000' MARK\nTimeoutStopSec=3\n"
)
WEB = (
    "[Service]\nExecStart=/bin/sh -c 'echo web says %i; exec sleep 1000' MARK-%n\n"
    "TimeoutStopSec=3\n\n[X-Fleet]\nConflicts=web@*\n"
)
KS = Keyspace()


def upload(admin: Browser, name: str, text: str | bytes, **form: str) -> object:
    data = text.encode() if isinstance(text, str) else text
    return admin.post(
        "/clusters/lab/units/upload",
        {"unit_file": (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
    )


def state_of(admin: Browser, unit: str) -> str:
    """The unit's row in the unit files table."""
    page = admin.get("/clusters/lab/units").text
    return page.split(f'<tr data-unit="{unit}">', 1)[1].split("</tr>", 1)[0]


def active_on_a_machine(admin: Browser, unit: str) -> bool:
    """The machines' table reports the unit active."""
    page = admin.get("/clusters/lab/units").text
    if 'id="unit-states"' not in page:
        return False
    table = page.split('id="unit-states"', 1)[1]
    rows = table.split(f'<tr data-unit="{unit}">')[1:]
    return any('<span class="state active">active</span>' in r.split("</tr>")[0] for r in rows)


def keys(lab: Lab) -> dict[str, bytes]:
    return {m.key.decode(): v for v, m in lab.registry.client.get_prefix(KS.units)}


@pytest.mark.slow
def test_an_uploaded_unit_starts_runs_and_its_log_reads(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    answer = upload(admin, "hello.service", lab.unit(HELLO), start="on")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/clusters/lab/units"
    wait_for(lambda: active_on_a_machine(admin, "hello.service"), 30, "hello active")
    assert 'class="state launched"' in state_of(admin, "hello.service")

    def logged() -> str | None:
        page = admin.get("/clusters/lab/units/hello.service/log").text
        return page if "hello from hello.service" in page else None

    log = wait_for(logged, 20, "the unit's line in its log")
    assert '<pre class="journal" data-unit="hello.service">' in log

    assert (
        admin.post(
            "/clusters/lab/units/action", {"unit": "hello.service", "action": "stop"}
        ).status_code
        == 302
    )
    wait_for(lambda: 'class="state loaded"' in state_of(admin, "hello.service"), 30, "stopped")

    assert (
        admin.post(
            "/clusters/lab/units/action", {"unit": "hello.service", "action": "destroy"}
        ).status_code
        == 302
    )
    assert "hello.service" not in lab.registry.specs()
    assert 'data-unit="hello.service"' not in admin.get("/clusters/lab/units").text


@pytest.mark.slow
def test_instances_of_a_template_start_and_their_logs_read_together(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    assert upload(admin, "web@.service", lab.unit(WEB), start="on").status_code == 302
    assert lab.registry.specs()["web@.service"].desired == "inactive"  # a template is kept
    answer = admin.post(
        "/clusters/lab/units/instances", {"template": "web@.service", "instances": "1, 2"}
    )
    assert answer.status_code == 302
    for name in ("web@1.service", "web@2.service"):
        wait_for(lambda n=name: active_on_a_machine(admin, n), 30, f"{name} active")

    def both() -> str | None:
        page = admin.get("/clusters/lab/units/web@*/log").text
        return page if "web says 1" in page and "web says 2" in page else None

    page = wait_for(both, 20, "both instances' lines")
    assert "every instance, grouped" in page
    assert page.index('data-unit="web@1.service"') < page.index('data-unit="web@2.service"')
    assert page.index("web says 1") < page.index('data-unit="web@2.service"')
    assert admin.get("/clusters/lab/units/web@.service/log").text.count('class="journal"') == 2


@pytest.mark.slow
def test_a_unit_that_cannot_be_placed_says_why(admin: Browser, lab_cluster: str, lab: Lab) -> None:
    text = lab.unit(HELLO) + "\n[X-Fleet]\nMachineMetadata=region=us\n"
    assert upload(admin, "us.service", text, start="on").status_code == 302
    why = 'data-why="us.service">no machine matches MachineMetadata region=us'
    wait_for(lambda: why in admin.get("/clusters/lab/units").text, 20, "the engine's reason")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"unit": "web.service", "action": "explode"}, "action"),
        ({"unit": "", "action": "start"}, "unit"),
        ({"unit": "bad name", "action": "start"}, "unit"),
    ],
)
def test_a_bad_action_form_is_refused_naming_the_field(
    admin: Browser, lab_cluster: str, form: dict[str, str], field: str
) -> None:
    answer = admin.post("/clusters/lab/units/action", form)
    assert answer.status_code == 400
    assert f'data-field="{field}"' in answer.text


@pytest.mark.parametrize(
    ("name", "data", "form", "field", "says"),
    [
        ("", b"", {}, "unit_file", "choose a unit file"),
        ("x.service", b"\xff\xfe", {}, "unit_file", "not UTF-8"),
        ("x.service", b"[X-Fleet]\nMachineID=abc\nGlobal=true\n", {}, "unit_file", "Global"),
        ("bad name.service", b"[Service]\nExecStart=/bin/true\n", {}, "unit_file", "bad name"),
    ],
)
def test_a_bad_upload_is_refused_naming_the_field_and_changes_nothing(
    admin: Browser,
    lab_cluster: str,
    lab: Lab,
    name: str,
    data: bytes,
    form: dict[str, str],
    field: str,
    says: str,
) -> None:
    before = keys(lab)
    answer = upload(admin, name, data, **form)
    assert answer.status_code == 400
    assert f'data-field="{field}"' in answer.text
    assert says in answer.text
    assert keys(lab) == before


def test_content_that_differs_from_the_submitted_is_a_conflict_until_replaced(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    assert upload(admin, "db.service", "[Service]\nExecStart=/bin/true\n").status_code == 302
    before = keys(lab)
    answer = upload(admin, "db.service", "[Service]\nExecStart=/bin/false\n")
    assert answer.status_code == 409
    assert 'data-field="unit_file"' in answer.text
    assert keys(lab) == before
    replaced = upload(admin, "db.service", "[Service]\nExecStart=/bin/false\n", replace="on")
    assert replaced.status_code == 302
    assert keys(lab) != before


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"template": "db.service", "instances": "1"}, "template"),
        ({"template": "web@.service", "instances": " "}, "instances"),
        ({"template": "web@.service", "instances": "a/b"}, "instances"),
    ],
)
def test_bad_instances_are_refused_naming_the_field_and_change_nothing(
    admin: Browser, lab_cluster: str, lab: Lab, form: dict[str, str], field: str
) -> None:
    upload(admin, "web@.service", lab.unit(WEB))
    before = keys(lab)
    answer = admin.post("/clusters/lab/units/instances", form)
    assert answer.status_code == 400
    assert f'data-field="{field}"' in answer.text
    assert keys(lab) == before


def test_an_action_on_a_unit_not_submitted_is_a_404(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    answer = admin.post("/clusters/lab/units/action", {"unit": "nosuch.service", "action": "stop"})
    assert answer.status_code == 404
    assert "nosuch.service" in answer.text


@pytest.mark.parametrize("lines", ["many", "0", "100000"])
def test_a_bad_line_count_is_refused_naming_it(
    admin: Browser, lab_cluster: str, lines: str
) -> None:
    answer = admin.get(f"/clusters/lab/units/x.service/log?lines={lines}")
    assert answer.status_code == 400
    assert 'data-field="lines"' in answer.text


def test_a_page_of_a_cluster_not_in_the_store_is_a_404(admin: Browser) -> None:
    answer = admin.get("/clusters/nosuch/units")
    assert answer.status_code == 404
    assert "no cluster named 'nosuch'" in html.unescape(answer.text)


def test_each_request_closes_its_cluster_connection(
    app: Flask, admin: Browser, lab_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Cluster] = []
    real_close = Cluster.close

    def close(self: Cluster) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Cluster, "close", close)
    assert admin.get("/clusters/lab/units").status_code == 200
    assert admin.get("/clusters/lab/machines").status_code == 200
    assert len(closed) == 2
    assert closed[0] is not closed[1]


def test_the_units_page_shows_the_machines_reports(
    admin: Browser, lab_cluster: str, etcd: Etcd
) -> None:
    state = UnitState("r.service", "feedface00", "loaded", "failed", "failed", 1.0, "exit 3")
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        client.put(KS.unit_state("r.service", "feedface00"), state.to_json())
    finally:
        client.close()
    page = admin.get("/clusters/lab/units").text
    assert '<span class="state failed">failed</span>' in page
    assert "exit 3" in page


def test_endpoints_that_cannot_name_a_cluster_are_a_503_saying_so(
    admin: Browser, store: Store
) -> None:
    add_cluster(store, "odd", "ftp://10.0.0.1:2379")
    answer = admin.get("/clusters/odd/units")
    assert answer.status_code == 503
    assert "endpoints cannot be used" in answer.text


def test_a_units_page_shows_its_file_and_where_it_stands(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    upload(admin, "db.service", "[Service]\nExecStart=/bin/true\n")
    page = admin.get("/clusters/lab/units/db.service")
    assert page.status_code == 200
    assert '<pre id="unit-file">[Service]\nExecStart=/bin/true\n</pre>' in page.text
    assert "not placed" in page.text
    assert 'href="/clusters/lab/units/db.service"' in admin.get("/clusters/lab/units").text
    assert admin.get("/clusters/lab/units/nosuch.service").status_code == 404
    assert admin.get("/clusters/lab/units/bad%20name").status_code == 400
