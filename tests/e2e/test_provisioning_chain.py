"""The product's chain, whole: the hosted installer's provisioning user-data boots the
provisioning machine; its container creates a cluster (a discovery URL from that
installer, with the install's own token) and hands out every node's user-data; machines
boot from it (one through the panel's `#include` join URL); the container reaches them
over SSH: units go in through `--tunnel`, `exec --all` runs everywhere, a swapped host key
is refused; a browser logs in to the panel, creates a cluster, starts a unit, sees it
running and reads its log; and a restarted container keeps its clusters, keys and
known_hosts.

The first test checks the provisioning machine itself: booted from exactly the
installer's document, the container run by exactly the unit it carries.

The tests share one chain and run in order, each building on what the one before left.
Every `vulcano` command runs inside the real provisioning container (`docker exec` in
the provisioning machine); the test process reaches the panel only through a loopback
forward into the provisioning machine's namespace.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from tests.appengine.alert_sinks import MailSink, Webhook, smtp_sink, webhook_receiver
from tests.appengine.browser import chromium_page
from tests.conftest import require_root
from tests.container.panel.served import login
from tests.e2e.nodes import wait_booted, wait_etcd_healthy
from vulcano import cloudconfig, image, nodetls, pki, selfsigned
from vulcano.lab import machines as lab_machines
from vulcano.lab import provisioning, services, stack
from vulcano.lab.errors import CloudInitFailed, LabError
from vulcano.lab.forward import PortForward
from vulcano.lab.images import ImageBuild
from vulcano.lab.installer import installer_server
from vulcano.lab.machines import Machine
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.podman import Podman
from vulcano.lab.poll import wait_for
from vulcano.lab.stack import (
    Provisioner,
    cluster_state,
    set_alerts,
    status_count,
    status_page,
)

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]

CLUSTER = "prod"
SIZE = 3
PANEL_PORT = 8080
# Debian's python3-requests (cloud-init's) verifies against this bundle
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PANEL_UP_TIMEOUT = stack.PANEL_UP_TIMEOUT
CONTAINER = stack.CONTAINER
UNITS_TIMEOUT = 120.0
WEB = """\
[Unit]
Description=web %i

[Service]
ExecStart=/bin/sh -c 'echo "web %i on %H"; exec sleep infinity'

[X-Fleet]
Conflicts=web@*
"""
HELLO = """\
[Unit]
Description=says hello

[Service]
ExecStart=/bin/sh -c 'echo hello from the panel on %H; exec sleep infinity'
"""
# The relay sends a heartbeat every 30 s (container/policy.py): three of them, and a lease.
MONITOR_TIMEOUT = 150.0


@dataclass
class Chain:
    underlay: Underlay
    provisioner: Machine
    provisioner_host: TestHost
    panel: PortForward
    password: str
    tmp: Path
    installer_url: str
    installer_loopback: str = ""
    manage_token: str = ""
    document: provisioning.InstallDocument | None = None
    mail: MailSink | None = None
    hook: Webhook | None = None
    node_hosts: list[TestHost] = field(default_factory=list)
    nodes: list[Machine] = field(default_factory=list)
    # every secret the run made, by what it is: none may reach a log, a page or an answer
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def box(self) -> Provisioner:
        return Provisioner(self.provisioner)

    def vulcano(self, *args: str, check: bool = True, stdin: str | None = None) -> tuple[int, str]:
        """`vulcano ARGS` in the provisioning container: (exit status, stdout+stderr)."""
        try:
            return self.box.vulcano(*args, check=check, stdin=stdin)
        except LabError as exc:
            raise AssertionError(str(exc)) from None

    def in_container(self, script: str, stdin: str | None = None) -> str:
        return self.box.in_container(script, stdin)

    def tunnel(self) -> list[str]:
        """Through node 1 to the cluster's members, with the container's certificate."""
        return ["--cluster", CLUSTER, "--tunnel", f"core@{self.node_hosts[0].ip}"]

    def container_id(self) -> str:
        return self.box.container_id()


def _wait_panel(machine: Machine, forward: PortForward) -> None:
    try:
        Provisioner(machine).wait_panel(forward, PANEL_UP_TIMEOUT)
    except LabError as exc:
        raise AssertionError(str(exc)) from None


@pytest.fixture(scope="module")
def chain(
    podman: Podman,
    vulcano_image: ImageBuild,
    machine_image: str,
    datastore_emulator: services.DatastoreEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    require_root()
    tmp = tmp_path_factory.mktemp("chain")
    datastore_emulator.reset()
    archive = provisioning.image_archive(podman, vulcano_image)
    provisioning_image = provisioning.build_provisioning_machine_image(podman).reference
    started: list[Machine] = []
    with contextlib.ExitStack() as stack:
        underlay = stack.enter_context(Underlay(tmp / "underlay", with_etcd=False))
        # The installer's alerts go to a real SMTP sink and webhook receiver on loopback.
        mail = stack.enter_context(smtp_sink())
        hook = stack.enter_context(webhook_receiver())
        alert_env = {
            "VULCANO_SMTP_HOST": "127.0.0.1",
            "VULCANO_SMTP_PORT": str(mail.port),
            "VULCANO_SMTP_FROM": "alerts@vulcano.test",
            "VULCANO_ALERT_WEBHOOK_ALLOW_PRIVATE": "1",
        }
        installer = stack.enter_context(
            installer_server(
                datastore_emulator, tmp / "installer.log", underlay=underlay, workers=2,
                threads=8, env_extra=alert_env,
            )
        )  # fmt: skip
        document = provisioning.create_install(installer, cluster_name=CLUSTER, size=SIZE)
        host = underlay.add_host()
        machine = lab_machines.start_machine(
            podman,
            provisioning_image,
            document.text,
            name=f"{underlay.token}-p{host.index}",
            netns=host.netns,
            read_only=[(archive, provisioning.IMAGE_ARCHIVE_DIR)],
            cgroupns="private",
        )
        started.append(machine)
        stack.callback(lambda: [m.stop_and_remove() for m in started])
        try:
            machine.wait_cloud_init()
        except CloudInitFailed as exc:
            raise AssertionError(f"{exc}\n{provisioning.diagnostics(machine)}") from None
        forward = stack.enter_context(host.forward(PANEL_PORT))
        _wait_panel(machine, forward)
        assert installer.underlay_url is not None
        chain = Chain(
            underlay,
            machine,
            host,
            forward,
            Provisioner(machine).generated_password(),
            tmp,
            installer.underlay_url,
            installer.url,
            document.token,
            document,
            mail,
            hook,
        )
        _set_alerts(chain, "ops@vulcano.test", hook.url)
        chain.node_hosts = underlay.add_hosts(SIZE)
        chain.nodes = started  # the machines list; nodes are appended after the first
        yield chain


def _set_alerts(chain: Chain, email: str, webhook: str) -> None:
    set_alerts(chain.installer_loopback, chain.manage_token, email, webhook)


def _status_page(chain: Chain) -> str:
    """The install's hosted status page, as the installer serves it."""
    return status_page(chain.installer_loopback, chain.manage_token)


def _seq(page: str) -> int:
    found = re.search(r"\(seq (\d+),", page)
    return int(found.group(1)) if found else -1


def _count(page: str, which: str) -> int:
    return status_count(page, which)


def _nodes(chain: Chain) -> list[Machine]:
    return chain.nodes[1:]


def test_the_installers_unit_runs_the_provisioning_container_in_the_machine(
    chain: Chain, podman: Podman, vulcano_image: ImageBuild
) -> None:
    """The machine booted from exactly the installer's document, and the container runs
    from exactly the unit it carries, with the image built here."""
    machine, document = chain.provisioner, chain.document
    assert document is not None
    assert document.content_type.startswith("text/cloud-config")
    assert machine.read_file("/var/lib/cloud/instance/user-data.txt") == document.text
    data = yaml.safe_load(document.text)
    (unit,) = [f for f in data["write_files"] if f["path"] == provisioning.UNIT_PATH]
    unit_text = str(unit["content"])
    assert machine.read_file(provisioning.UNIT_PATH) == unit_text  # byte for byte

    health = chain.box.get_panel(chain.panel.port).json()  # HTTPS, verified
    assert health == {
        "status": "ok",
        "cluster_name": CLUSTER,
        "cluster_size": SIZE,
        "state_dir_writable": True,
        "version": image.VERSION,
    }
    # every page but /healthz (and the nodes' join route) asks for the admin's login
    page = chain.box.get_panel(chain.panel.port, "/")
    assert page.status_code == 200
    assert page.url.endswith("/login?next=/")
    assert "<h1>Log in</h1>" in page.text

    # Its main process is the unit's own ExecStart, with the unit's Environment=
    # substituted, and the container runs the image built here, as the image's user.
    assert machine.systemctl("is-active", provisioning.PROVISIONER_UNIT).stdout.strip() == (
        "active"
    )
    exec_start = provisioning.unit_command(unit_text)
    assert exec_start[:2] == ["/usr/bin/docker", "run"]
    assert exec_start[-1] == image.REFERENCE
    assert provisioning.main_process_argv(machine) == exec_start
    assert provisioning.container_state(machine) == {
        "status": "running",
        "image": "sha256:" + podman.image_id(vulcano_image.reference),
        "user": f"{image.USER_ID}:{image.USER_ID}",
        "network": "host",
    }
    owner = machine.exec(["stat", "-c", "%u %g %a", image.STATE_DIR]).stdout.split()
    assert owner == [str(image.USER_ID), str(image.USER_ID), "700"]


def test_the_container_creates_a_cluster_and_its_nodes_boot_from_its_user_data(
    chain: Chain, podman: Podman, machine_image: str
) -> None:
    # On TLS by default. Node 1's address is given: its key and certificate are made in
    # the container and carried in its user-data. Nodes 2 and 3 find theirs at boot, so
    # each makes its key then and gets its certificate from the panel (enrolment).
    chain.vulcano("cluster", "create", CLUSTER, "--size", str(SIZE), "--ip", chain.node_hosts[0].ip)
    _, shown = chain.vulcano("cluster", "show", CLUSTER, "--json")
    record = json.loads(shown)
    assert record["cluster"] == CLUSTER and record["size"] == str(SIZE)
    assert record["tls"] == "mutual", record
    # The discovery URL is the hosted installer's own (on the underlay), made with the
    # install's token, which reached the container only as a 0600 file.
    assert record["discovery"].startswith(chain.installer_url + "/"), record

    # Nodes 1 and 2 get their documents pasted; node 3 a two-line #include of the panel's
    # join URL, fetched by its cloud-init at boot with the cluster's join token, over the
    # panel's HTTPS: cloud-init checks the certificate against the system's CA bundle
    # only, so node 3's bundle is the panel's certificate (as a user's node would trust
    # a certificate given with --tls-cert; the one the panel made names its address).
    panel_url = f"https://{chain.provisioner_host.ip}:{PANEL_PORT}"
    bundle = chain.box.save_panel_certificate(chain.tmp / "node-ca-bundle.crt")
    _, joined = chain.vulcano("cluster", "join-token", CLUSTER, "--panel-url", panel_url)
    include = next(line for line in joined.splitlines() if line.startswith("include "))
    include_doc = include.removeprefix("include ").replace(" ", "\n", 1).replace("/N?", "/3?")
    chain.secrets["join token"] = include_doc.rsplit("token=", 1)[1]
    documents = []
    for node in (1, 2):
        _, text = chain.vulcano("cluster", "user-data", CLUSTER, "--node", str(node))
        assert text.startswith("#cloud-config")
        documents.append(text)
    chain.secrets["node 1's key"] = _key_body(documents[0])
    chain.secrets["node 2's enrolment token"] = _ENROL_TOKEN.findall(documents[1])[0]
    documents.append(include_doc + "\n")
    for node, (host, text) in enumerate(zip(chain.node_hosts, documents, strict=True), 1):
        chain.nodes.append(
            lab_machines.start_machine(
                podman,
                machine_image,
                text,
                name=f"{chain.underlay.token}-n{node}",
                netns=host.netns,
                read_only=[(bundle, CA_BUNDLE)] if node == 3 else [],
            )
        )
    for machine in _nodes(chain):
        wait_booted(machine)
    for machine in _nodes(chain):
        wait_etcd_healthy(machine)
    hostnames = [m.exec(["hostname"]).stdout.strip() for m in _nodes(chain)]
    assert hostnames == [f"{CLUSTER}-{i}" for i in (1, 2, 3)]
    _check_enrolled(chain)

    # The container learns where etcd answers from the discovery registrations, and writes
    # the overlay config there; then every agent comes up.
    _, learned = chain.vulcano("cluster", "endpoints", CLUSTER)
    for host in chain.node_hosts:
        assert f"https://{host.ip}:2379" in learned, learned  # etcd on mutual TLS

    def three_machines() -> bool:
        code, out = chain.vulcano("--cluster", CLUSTER, "list-machines", "--no-legend", check=False)
        return code == 0 and len(out.splitlines()) == SIZE

    wait_for(three_machines, UNITS_TIMEOUT, "three machines in list-machines", 2.0)


_ENROL_TOKEN = re.compile(r"enrol_token='([^']+)'")


def _key_body(text: str) -> str:
    """The first private key's base64 in a text (a line of it: what a leak would show)."""
    found = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+([A-Za-z0-9+/=]{40,})", text)
    assert found, "no private key in the text"
    return found.group(1)


def _check_enrolled(chain: Chain) -> None:
    """Nodes 2 and 3 hold certificates of the cluster's CA for keys they made, naming the
    addresses they found; their enrolment files (the token) are gone; the container's
    audit log has each signing, and its database no token."""
    for node, (machine, host) in enumerate(zip(_nodes(chain), chain.node_hosts, strict=True), 1):
        tls_dir = nodetls.TLS_DIR
        listed = machine.exec(["ls", tls_dir]).stdout.split()
        assert sorted(listed) == ["ca.pem", "crl.pem", "node-key.pem", "node.pem"], listed
        cert = machine.exec(["cat", nodetls.CERT_PATH]).stdout.encode()
        assert host.ip in selfsigned.san_names(cert)
        assert pki.issued_by(cert, machine.exec(["cat", nodetls.CA_PATH]).stdout.encode())
        enrolled = machine.exec(["test", "-e", nodetls.ENROL_PATH], check=False).returncode
        assert enrolled != 0, f"node {node} kept its enrolment file"
        owner = machine.exec(["stat", "-c", "%U %a", nodetls.KEY_PATH]).stdout.split()
        assert owner == ["etcd", "600"], owner
    _, audit = chain.vulcano("audit", "--no-legend")
    for node in (2, 3):
        assert re.search(rf"certificate-enrol\s+{CLUSTER}-{node}\b", audit), audit


def test_units_go_in_through_the_tunnel_and_run_on_every_node(chain: Chain) -> None:
    chain.in_container("cat > /tmp/web@.service", stdin=WEB)
    webs = [f"web@{i}.service" for i in (1, 2, 3)]
    chain.vulcano(*chain.tunnel(), "submit", "/tmp/web@.service")
    chain.vulcano(*chain.tunnel(), "start", "--block-timeout", str(UNITS_TIMEOUT), *webs)
    _, listed = chain.vulcano(
        *chain.tunnel(), "list-units", "--no-legend", "--fields", "unit,active,sub"
    )
    assert listed.splitlines() == [f"{w}\tactive\trunning" for w in webs], listed
    # Each on its own node (Conflicts=web@*), run by that node's systemd.
    running = {
        m.exec(["hostname"]).stdout.strip(): m.systemctl("is-active", w).stdout.strip()
        for m in _nodes(chain)
        for w in webs
        if m.systemctl("is-active", w).stdout.strip() == "active"
    }
    assert sorted(running) == [f"{CLUSTER}-{i}" for i in (1, 2, 3)]
    # status and journal through the tunnel too
    _, status = chain.vulcano(*chain.tunnel(), "status", "web@1.service")
    assert "web@1.service" in status
    _, journal = chain.vulcano(*chain.tunnel(), "journal", "web@2.service")
    assert "web 2 on" in journal, journal


def test_exec_runs_everywhere_and_reports_every_host(chain: Chain) -> None:
    code, out = chain.vulcano("--cluster", CLUSTER, "exec", "--all", "--", "hostname")
    assert code == 0
    for i in (1, 2, 3):
        assert f"{CLUSTER}-{i}" in out, out
    # One host's command fails, one host is unreachable: both said, and a non-zero exit.
    failing, dark = _nodes(chain)[1], _nodes(chain)[2]
    dark.systemctl("stop", "ssh.socket", "ssh.service")
    try:
        code, out = chain.vulcano(
            "--cluster", CLUSTER, "exec", "--all", "--", "sh", "-c",
            f"test $(hostname) != {CLUSTER}-2", check=False,
        )  # fmt: skip
    finally:
        dark.systemctl("start", "ssh.service")
    assert code != 0, out
    assert re.search(r"exit(ed)? (status )?1", out), out
    assert chain.node_hosts[2].ip in out or "unreachable" in out.lower(), out
    assert failing is not dark


def test_a_host_key_swapped_under_the_same_address_is_refused(chain: Chain) -> None:
    node, host = _nodes(chain)[2], chain.node_hosts[2]  # not the tunnel's host
    _, before = chain.vulcano("--cluster", CLUSTER, "list-machines", "--no-legend", "--full")
    machine_id = next(line.split()[0] for line in before.splitlines() if host.ip in line)
    code, out = chain.vulcano("--cluster", CLUSTER, "ssh", machine_id, "--", "hostname")
    assert code == 0 and f"{CLUSTER}-3" in out
    node.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A"])
    node.systemctl("restart", "ssh.service")
    code, out = chain.vulcano(
        "--cluster", CLUSTER, "ssh", machine_id, "--", "hostname", check=False
    )
    assert code != 0
    assert len(re.findall(r"SHA256:[A-Za-z0-9+/]{43}", out)) >= 2, out


def test_a_browser_logs_in_creates_a_cluster_starts_a_unit_and_reads_its_log(
    chain: Chain,
) -> None:
    from playwright.sync_api import Page

    url = stack.panel_url(chain.panel)
    trusted = chain.box.save_panel_certificate(chain.tmp / "panel.pem")
    with chromium_page(chain.tmp / "chromium", trusted) as page:
        assert isinstance(page, Page)
        page.goto(url + "/clusters")
        assert "/login" in page.url
        page.fill("#password", chain.password)
        page.click("#login")
        page.wait_for_selector("#clusters")
        # The panel asks the hosted installer for a test alert: it reaches the webhook.
        assert chain.hook is not None
        before = len(chain.hook.bodies)
        page.click("#test-alert")
        assert "Test alert: 2 delivered, 0 failed." in page.inner_text(".flash")
        assert len(chain.hook.bodies) == before + 1
        # A second cluster, made from the form: a discovery URL from the installer.
        page.fill("#name", "edge")
        page.fill("#size", "1")
        page.click("#create")
        page.wait_for_url("**/clusters/edge")
        assert "<h1>Cluster edge</h1>" in page.content()
        # on TLS, as the form's box is checked by default; its member enrols with this panel
        _, edge = chain.vulcano("cluster", "show", "edge", "--json")
        assert json.loads(edge)["tls"] == "mutual", edge
        _, edge_node = chain.vulcano("cluster", "user-data", "edge", "--node", "1")
        assert (
            f"enrol_url='https://{chain.provisioner_host.ip}:{PANEL_PORT}/join/edge/1/certificate'"
            in edge_node
        )

        page.goto(url + f"/clusters/{CLUSTER}/units")
        page.set_input_files(
            "#unit_file",
            files=[{"name": "hello.service", "mimeType": "text/plain",
                    "buffer": HELLO.encode()}],
        )  # fmt: skip
        page.click("#submit-unit")
        active = '#unit-states tr[data-unit="hello.service"] .state.active'
        deadline = time.monotonic() + UNITS_TIMEOUT
        while not page.locator(active).count():
            assert time.monotonic() < deadline, "hello.service never showed active"
            time.sleep(1.0)
            page.click("#refresh")
        page.click('#unit-files tr[data-unit="hello.service"] a:text("log")')
        journal = 'pre.journal[data-unit="hello.service"]'
        deadline = time.monotonic() + 60
        while "hello from the panel on" not in page.inner_text(journal):
            assert time.monotonic() < deadline, "the unit's line never showed in its log"
            time.sleep(1.0)
            page.click("#refresh")
        page.screenshot(path=str(chain.tmp / "panel-log.png"), full_page=True)
    _, audit = chain.vulcano("audit", "--no-legend")
    assert "hello.service" in audit and "panel" in audit, audit


def test_a_restarted_container_keeps_its_clusters_keys_and_known_hosts(chain: Chain) -> None:
    state = image.STATE_DIR

    def digests() -> str:
        return chain.in_container(
            f"sha256sum {state}/id_ed25519 {state}/id_ed25519.pub {state}/known_hosts"
        )

    kept = digests()
    _, clusters_before = chain.vulcano("cluster", "list", "--json")
    first = chain.container_id()
    chain.provisioner.exec(["docker", "kill", CONTAINER])
    wait_for(
        lambda: chain.container_id() not in ("", first), PANEL_UP_TIMEOUT, "a new container", 1.0
    )
    _wait_panel(chain.provisioner, chain.panel)
    assert digests() == kept
    _, clusters_after = chain.vulcano("cluster", "list", "--json")
    assert json.loads(clusters_after) == json.loads(clusters_before)
    assert {c["cluster"] for c in json.loads(clusters_after)} == {CLUSTER, "edge"}
    # ... and it still reaches the cluster, with the host keys it had pinned.
    _, listed = chain.vulcano(*chain.tunnel(), "list-units", "--no-legend")
    assert len(listed.splitlines()) >= 4
    assert kept.count("\n") == 3  # all three files are there to compare


def test_the_hosted_status_page_shows_every_machine_up(chain: Chain) -> None:
    # The container's relay summarizes the cluster and posts it with the install's
    # reporting secret; the installer keeps it and renders the page from it.
    def all_up() -> str | None:
        page = _status_page(chain)
        return page if _count(page, "up") == SIZE else None

    page = wait_for(all_up, MONITOR_TIMEOUT, "three machines up on the hosted status page", 2.0)
    assert _count(page, "down") == 0
    assert 'data-state="reporting"' in page, page[:3000]
    assert "<svg" in page  # the history's charts


def test_a_killed_machine_turns_down_on_the_page_and_one_alert_arrives(chain: Chain) -> None:
    assert chain.hook is not None and chain.mail is not None
    chain.nodes[SIZE].kill()  # node 3, podman kill: no agent says goodbye
    wait_for(
        lambda: _count(_status_page(chain), "down") == 1,
        MONITOR_TIMEOUT,
        "the killed machine down on the hosted status page",
        2.0,
    )
    hook, mail = chain.hook, chain.mail

    def downs() -> list[str]:
        return [c for c in hook.changes if c.startswith("machine-down")]

    wait_for(lambda: downs() or None, 60, "the webhook's alert", 1.0)
    wait_for(lambda: mail.messages or None, 60, "the e-mail alert", 1.0)
    # Another heartbeat or two later: still one alert for that one transition.
    seq = re.search(r"seq (\d+)", _status_page(chain))
    assert seq is not None
    wait_for(
        lambda: (
            (m := re.search(r"seq (\d+)", _status_page(chain)))
            and int(m.group(1)) > int(seq.group(1)) + 1
        ),
        MONITOR_TIMEOUT,
        "two more heartbeats",
        2.0,
    )
    assert len(downs()) == 1, hook.changes
    assert len([m for m in mail.messages if "down" in str(m["Subject"]).lower()]) == 1


def test_a_cluster_that_stops_reporting_turns_unreachable_alerts_once_and_recovers(
    chain: Chain,
) -> None:
    assert chain.hook is not None
    hook = chain.hook

    def changes(kind: str) -> list[str]:
        # the cluster's own alerts (the panel's test alert earlier is marked "test")
        return [
            f"{b['alert']['change']} {b['alert']['subject']}"
            for b in hook.bodies
            if not b.get("test") and b["alert"]["change"].startswith(kind)
        ]

    def sweep() -> None:
        # what App Engine's cron does every minute (cron.yaml)
        done = requests.get(
            f"{chain.installer_loopback}/cron/heartbeat/sweep",
            headers={"X-Appengine-Cron": "true"},
            timeout=30,
        )
        assert done.status_code == 200, done.text

    def page_state() -> str:
        return cluster_state(_status_page(chain))

    # The provisioning container stops (and its relay with it): no more heartbeats.
    cert = chain.box.save_panel_certificate(chain.tmp / "panel-before-stop.pem")
    chain.provisioner.systemctl("stop", provisioning.PROVISIONER_UNIT, check=True)
    # the container stops with its unit, and the panel with it
    assert chain.provisioner.systemctl(
        "is-active", provisioning.PROVISIONER_UNIT
    ).stdout.strip() in ("inactive", "failed")
    assert provisioning.container_state(chain.provisioner) == {}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"https://127.0.0.1:{chain.panel.port}/healthz", timeout=5, verify=str(cert))
    wait_for(lambda: page_state() == "unreachable", MONITOR_TIMEOUT, "unreachable", 2.0)
    sweep()
    wait_for(lambda: changes("cluster-unreachable") or None, 60, "the unreachable alert", 1.0)
    sweep()  # a second sweep finds nothing new to say
    assert len(changes("cluster-unreachable")) == 1, hook.changes

    # It comes back: the next heartbeat says so, once.
    chain.provisioner.systemctl("start", provisioning.PROVISIONER_UNIT, check=True)
    _wait_panel(chain.provisioner, chain.panel)
    wait_for(lambda: page_state() == "reporting", MONITOR_TIMEOUT, "reporting again", 2.0)
    wait_for(lambda: changes("cluster-reporting") or None, 60, "the recovery notice", 1.0)
    assert len(changes("cluster-reporting")) == 1, hook.changes


def test_no_secret_of_the_run_reaches_a_log_a_page_or_an_answer(chain: Chain) -> None:
    """Every secret this run made, looked for in every log, page and answer it produced:
    the installer's log, the provisioning container's log, every machine's journal and
    cloud-init logs, the hosted status page, the panel's pages, and the CLI's answers.
    Excepted by design: the container's first log prints the generated admin password
    once, on its own line (and nowhere else), and the pages made to hand out user-data."""
    assert chain.document is not None
    document = yaml.safe_load(chain.document.text)
    files = {f["path"]: str(f["content"]).strip() for f in document["write_files"]}
    state = image.STATE_DIR
    secrets = {
        **chain.secrets,
        "manage token": chain.manage_token,
        "admin password": chain.password,
        "installer token": files[cloudconfig.INSTALLER_TOKEN_HOST_PATH],
        "reporting secret": files[cloudconfig.REPORT_TOKEN_HOST_PATH],
        "the CA's key": _key_body(chain.in_container(f"cat {state}/pki/{CLUSTER}/ca-key.pem")),
        "the container's etcd key": _key_body(
            chain.in_container(f"cat {state}/pki/{CLUSTER}/container-key.pem")
        ),
        "the panel's key": _key_body(chain.in_container(f"cat {state}/panel-tls-key.pem")),
    }
    assert all(len(value) >= 16 for value in secrets.values()), secrets.keys()
    sources: dict[str, str] = {"the installer's log": (chain.tmp / "installer.log").read_text()}
    container_log = provisioning.docker_logs(chain.provisioner)
    # (the container made anew by the restart above has a log of its own: no password)
    shown = [line for line in container_log.splitlines() if chain.password in line]
    assert all("generated admin password" in line for line in shown) and len(shown) <= 1
    sources["the container's log"] = container_log.replace(shown[0], "") if shown else container_log
    machines = [("provisioning machine", chain.provisioner)]
    machines += [(f"node {i}", m) for i, m in enumerate(_nodes(chain), 1)]
    stopped = [name for name, machine in machines if not machine.running()]
    assert stopped == [f"node {SIZE}"], stopped  # killed above; its files are still there
    for name, machine in machines:
        for log in ("/var/log/cloud-init.log", "/var/log/cloud-init-output.log"):
            copy = chain.tmp / f"{machine.container}-{Path(log).name}"
            machine.podman.run("cp", f"{machine.container}:{log}", str(copy), timeout=60)
            sources[f"the {name}'s {log}"] = copy.read_text(errors="replace")
        if name not in stopped:  # a stopped machine's journal was in its /run
            journal = machine.exec(["journalctl", "--no-pager", "-o", "cat"], timeout=120)
            sources[f"the {name}'s journal"] = journal.stdout
    # The container's first log went to the provisioning machine's journal too (the unit
    # runs it in the foreground): the same one line with the generated password.
    journal = sources["the provisioning machine's journal"].splitlines()
    shown = [line for line in journal if chain.password in line]
    assert all("generated admin password" in line for line in shown) and len(shown) <= 1
    sources["the provisioning machine's journal"] = "\n".join(
        line for line in journal if line not in shown
    )
    # cloud-init writes the URL it #includes, the join token in it, to node 3's own log:
    # there the token is spent (it serves node 3 to node 3's address only), as a replay
    # of that URL from elsewhere shows.
    node3_log = f"the node {SIZE}'s /var/log/cloud-init.log"
    logged = re.search(r"https://\S+/join/\S+\?token=[A-Za-z0-9_-]+", sources[node3_log])
    assert logged and chain.secrets["join token"] in logged.group(0), "no include URL logged"
    replay = chain.box.get_panel(chain.panel.port, logged.group(0).split(str(PANEL_PORT), 1)[1])
    assert replay.status_code == 403 and "to another address" in replay.text, replay.text
    sources[node3_log] = sources[node3_log].replace(chain.secrets["join token"], "")
    sources["the hosted status page"] = _status_page(chain)
    trusted = chain.box.save_panel_certificate(chain.tmp / "panel-secrets.pem")
    session = login(stack.panel_url(chain.panel), chain.password, verify=str(trusted))
    for path in ("/clusters", f"/clusters/{CLUSTER}", f"/clusters/{CLUSTER}/units", "/audit"):
        page = session.get(stack.panel_url(chain.panel) + path, timeout=30)
        assert page.status_code == 200, (path, page.status_code)
        sources[f"the panel's {path}"] = page.text
    for args in (
        ("cluster", "list"),
        ("cluster", "show", CLUSTER, "--json"),
        ("audit", "--json"),
        ("--cluster", CLUSTER, "list-machines", "--full"),
        ("--cluster", CLUSTER, "list-units"),
    ):
        sources[f"vulcano {' '.join(args)}"] = chain.vulcano(*args)[1]
    assert all(sources.values()), [k for k, v in sources.items() if not v]
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in sources.items()
        if secret in text
    ]
    assert not leaks, leaks
