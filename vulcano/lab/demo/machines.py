"""The demo on machines: as root with podman, every piece real (see the package's doc)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import requests

from vulcano import image, nodetls
from vulcano.lab import provisioning
from vulcano.lab.demo.parts import (
    ALERT_ADDRESS,
    BALANCER_UNIT,
    CLUSTER,
    CLUSTER_FORM_TIMEOUT,
    MACHINE_BOOT_TIMEOUT,
    PANEL_PORT_IN_MACHINE,
    SERVICE_PORT_IN_MACHINE,
    STATUS_TIMEOUT,
    UNITS_TIMEOUT,
    VULCANO_CLI,
    WEB_UNIT,
    Ports,
    Progress,
    Shown,
    emulator_and_mail,
    step,
)  # fmt: skip
from vulcano.lab.forward import PortForward
from vulcano.lab.installer import installer_server
from vulcano.lab.netns import NETNS_DIR, Underlay
from vulcano.lab.poll import wait_for
from vulcano.lab.stack import (
    Provisioner,
    panel_url,
    set_alerts,
    status_count,
    status_page,
    status_url,
)

# --- the full demo --------------------------------------------------------------------


def bring_up_machines(
    stack: contextlib.ExitStack, args: argparse.Namespace, progress: Progress, tmp: Path
) -> Shown:
    from vulcano.lab import machines as lab_machines
    from vulcano.lab.images import build_image
    from vulcano.lab.podman import Podman

    ports: Ports = args.ports
    podman = Podman()
    stack.callback(lab_machines.remove_run_machines, podman)  # a safety net, by run token
    with progress.step("building the images (cached by their inputs; a first run takes ~5 min)"):
        vulcano_image = build_image(podman=podman)
        machine_image = lab_machines.build_machine_image(podman).reference
        provisioning_image = provisioning.build_provisioning_machine_image(podman).reference
        archive = provisioning.image_archive(podman, vulcano_image)

    shown = Shown()
    emulator, env = emulator_and_mail(stack, progress, shown, ports.mail)
    underlay = stack.enter_context(Underlay(tmp / "underlay", with_etcd=False))
    installer = step(
        progress, "starting the hosted installer (gunicorn)", 60,
        lambda: stack.enter_context(installer_server(
            emulator, tmp / "installer.log", port=ports.installer, underlay=underlay,
            workers=2, threads=8, env_extra=env,
        )),
    )  # fmt: skip
    shown.installer = installer.url
    shown.heartbeat = f"{installer.url}/api/heartbeat"
    size = args.machines
    document = step(
        progress, "creating an install through the installer's form", 30,
        lambda: provisioning.create_install(installer, cluster_name=CLUSTER, size=size),
    )  # fmt: skip
    set_alerts(installer.url, document.token, ALERT_ADDRESS)
    shown.manage = f"{installer.url}/installs/{document.token}"
    shown.status_page = status_url(installer.url, document.token)

    host = underlay.add_host()
    machine = lab_machines.start_machine(
        podman, provisioning_image, document.text,
        name=f"{underlay.token}-p{host.index}", netns=host.netns,
        read_only=[(archive, provisioning.IMAGE_ARCHIVE_DIR)], cgroupns="private",
    )  # fmt: skip
    stack.callback(machine.stop_and_remove)
    step(
        progress, "booting the provisioning machine from the install's user-data",
        MACHINE_BOOT_TIMEOUT, machine.wait_cloud_init,
    )  # fmt: skip
    panel = stack.enter_context(
        PortForward(NETNS_DIR / host.netns, host.ip, PANEL_PORT_IN_MACHINE, ports.panel)
    )
    box = Provisioner(machine)
    step(
        progress,
        "waiting for the provisioning container's panel",
        300,
        lambda: box.wait_panel(panel),
    )
    shown.panel = panel_url(panel)
    shown.panel_password = box.generated_password()
    shown.panel_fingerprint = box.panel_fingerprint()
    shown.panel_certificate = str(box.save_panel_certificate(tmp / "panel.pem"))

    hosts = underlay.add_hosts(size)
    # as on a cloud that picks the addresses: none given, so each member finds its own
    # at boot and gets its certificate from the panel (on TLS, the default)
    step(
        progress, f"creating cluster {CLUSTER!r} (a discovery URL from the installer)", 60,
        lambda: box.vulcano("cluster", "create", CLUSTER, "--size", str(size)),
    )  # fmt: skip
    nodes = []
    for i, h in enumerate(hosts, 1):
        _, text = box.vulcano("cluster", "user-data", CLUSTER, "--node", str(i))
        node = lab_machines.start_machine(
            podman, machine_image, text, name=f"{underlay.token}-n{i}", netns=h.netns
        )
        stack.callback(node.stop_and_remove)
        nodes.append(node)

    def booted() -> None:
        for node in nodes:
            node.wait_cloud_init()

    step(progress, f"booting {size} machines from the node user-data", MACHINE_BOOT_TIMEOUT, booted)

    # each node's etcd admits only certificates of the cluster's CA
    health = ["curl", "-fsS", "--max-time", "3", "--cacert", nodetls.CA_PATH]
    health += ["--cert", nodetls.CERT_PATH, "--key", nodetls.KEY_PATH]
    health += ["https://127.0.0.1:2379/health"]

    def etcd_healthy() -> bool:
        for node in nodes:
            done = node.exec(health)
            if '"health":"true"' not in done.stdout.replace(" ", ""):
                return False
        return True

    step(
        progress, "waiting for etcd to form through discovery", CLUSTER_FORM_TIMEOUT,
        lambda: wait_for(etcd_healthy, CLUSTER_FORM_TIMEOUT, "etcd healthy on every member", 1.0),
    )  # fmt: skip
    # The container learns where etcd answers from the discovery registrations and writes
    # the cluster's network config there; then the agents come up.
    box.vulcano("cluster", "endpoints", CLUSTER)

    def listed() -> list[list[str]]:
        code, out = box.vulcano(
            "--cluster", CLUSTER, "list-machines", "--full", "--no-legend", check=False
        )
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return rows if code == 0 and len(rows) == size else []

    rows: list[list[str]] = step(
        progress, "waiting for every agent to join", CLUSTER_FORM_TIMEOUT,
        lambda: wait_for(listed, CLUSTER_FORM_TIMEOUT, "every machine in list-machines", 2.0),
    )  # fmt: skip
    names = {h.ip: n.container for h, n in zip(hosts, nodes, strict=True)}
    hostnames = {h.ip: f"{CLUSTER}-{i}" for i, h in enumerate(hosts, 1)}
    for row in sorted(
        rows, key=lambda r: hostnames.get(next((w for w in r if w in names), ""), "")
    ):
        ip = next((w for w in row if w in names), "")
        shown.machines.append({"id": row[0], "name": names.get(ip, ""), "ip": ip,
                               "hostname": hostnames.get(ip, "")})  # fmt: skip

    box.in_container("cat > /tmp/web@.service", stdin=WEB_UNIT)
    box.in_container("cat > /tmp/balancer.service", stdin=BALANCER_UNIT)
    webs = [f"web@{i}.service" for i in (1, 2, 3)]
    cluster = ("--cluster", CLUSTER)
    box.vulcano(*cluster, "submit", "/tmp/web@.service", "/tmp/balancer.service")
    step(
        progress, "starting web@1..3 and the balancer on the cluster", UNITS_TIMEOUT,
        lambda: box.vulcano(
            *cluster, "start", "--block-timeout", str(UNITS_TIMEOUT), *webs, "balancer.service"
        ),
    )  # fmt: skip
    service = stack.enter_context(
        PortForward(NETNS_DIR / hosts[0].netns, hosts[0].ip, SERVICE_PORT_IN_MACHINE, ports.service)
    )
    shown.service = f"http://127.0.0.1:{service.port}"

    def answered() -> bool:
        """Every instance answers through the balancer (each passed its health check)."""
        seen = set()
        for _ in range(3 * len(webs)):
            try:
                text = requests.get(shown.service or "", timeout=3).text
            except requests.RequestException:
                return False
            if text.startswith("web "):
                seen.add(text.split()[1])
        return len(seen) == len(webs)

    step(progress, "waiting for web@1..3 to answer through the balancer", 120,
          lambda: wait_for(answered, 120, "web@1..3 through the balancer", 1.0))  # fmt: skip
    step(
        progress, "waiting for the heartbeats to reach the hosted status page", STATUS_TIMEOUT,
        lambda: wait_for(
            lambda: status_count(status_page(installer.url, document.token), "up") == size,
            STATUS_TIMEOUT, "every machine up on the status page", 2.0,
        ),
    )  # fmt: skip
    for h in hosts:
        forward = stack.enter_context(h.forward(2379))
        shown.etcd.append(f"https://127.0.0.1:{forward.port}")
    shown.etcd_client = _etcd_client_files(box, tmp / "etcd-client")
    tls_flags = " ".join(f"--{k} {v}" for k, v in shown.etcd_client.items())
    victim = shown.machines[-1] if shown.machines else {}
    shown.notes.append(
        "the installer keeps installs in the Datastore emulator's memory: they are gone "
        "when the demo stops"
    )
    shown.try_commands = [
        f"curl -s {shown.service}/            # answered by web@1, @2 and @3 in turn",
        f"{VULCANO_CLI} --endpoint {shown.etcd[0]} {tls_flags} list-units",
        f"{VULCANO_CLI} --endpoint {shown.etcd[0]} {tls_flags} list-machines",
        f"podman kill {victim.get('name', '')}   # then watch its units move, "
        "the status page turn red and an alert reach the mail page",
        f"podman exec {shown.machines[0]['name']} journalctl -u vulcano-agent -f",
    ]
    return shown


def _etcd_client_files(box: Provisioner, directory: Path) -> dict[str, str]:
    """The container's own client certificate of the cluster's CA, copied out for the
    commands to try (the key 0600): cacert, cert and key paths."""
    source = f"{image.STATE_DIR}/pki/{CLUSTER}"
    directory.mkdir(parents=True, exist_ok=True)
    files = {"cacert": "ca.pem", "cert": "container.pem", "key": "container-key.pem"}
    out = {}
    for flag, name in files.items():
        path = directory / name
        path.touch(mode=0o600)
        path.write_text(box.in_container(f"cat {source}/{name}"))
        out[flag] = str(path)
    return out
