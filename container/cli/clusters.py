"""The cluster commands: `vulcano cluster` create, list, show, renew, delete, user-data,
join-token, endpoints.

Clusters live in the state dir's database (`--state-dir`); each command opens it only
when it runs, so `vulcano --help` and the etcd commands need no writable state dir.
"""

from __future__ import annotations

import datetime
import json
import sys

import click

from container import policy
from container.cli.context import service_errors, state_dir_of, store_of
from container.cli.output import list_options, or_dash, print_table, timestamp
from container.services import (
    certificates,
    clusternetwork,
    clusters,
    discovery,
    enrolment,
    jointokens,
    nodes,
)
from container.services.clusters import ClusterRecord
from container.services.installer import INSTALLER_URL_VAR, Installer
from vulcano import nodeconfig
from vulcano.keyspace import DEFAULT_PREFIX

_COLUMNS = ["cluster", "size", "flavour", "network", "etcd"]
_KNOWN = [
    *_COLUMNS,
    "tls",
    "discovery",
    "endpoints",
    "network_written",
    "created",
    "join_token",
]


@click.group("cluster")
def cluster() -> None:
    """Clusters this container provisions: create, list, show, delete, user-data."""


def _row(record: ClusterRecord) -> dict[str, str]:
    return {
        "cluster": record.name,
        "size": str(record.size),
        "flavour": record.flavour,
        "network": record.network,
        "etcd": str(record.etcd_size),
        "tls": "mutual" if record.tls else "off",
        "discovery": record.discovery_url,
        "endpoints": or_dash(record.endpoints),
        "network_written": timestamp(record.network_written_at),
        "created": timestamp(record.created_at),
        "join_token": _expiry(record.join_token_expires),
    }


def _expiry(expires: float) -> str:
    if not expires:
        return "none"
    if expires <= datetime.datetime.now(datetime.UTC).timestamp():
        return "expired"
    return f"until {timestamp(expires)}"


@cluster.command("create")
@click.argument("name")
@click.option("--size", required=True, type=int, help="How many machines the cluster has.")
@click.option(
    "--flavour",
    default=clusters.DEFAULT_FLAVOUR,
    show_default=True,
    help=f"Nodes' user-data: {', '.join(nodeconfig.FLAVOURS)}.",
)
@click.option(
    "--network",
    "network_cidr",
    default=clusters.DEFAULT_NETWORK,
    show_default=True,
    help="The overlay network (IPv4 CIDR); each node leases a /24 of it.",
)
@click.option(
    "--ip",
    "node_ips",
    multiple=True,
    help="Node 1's address, then node 2's, …; nodes without one find theirs at boot.",
)
@click.option(
    "--installer-url",
    envvar=INSTALLER_URL_VAR,
    help="The hosted installer that makes discovery URLs (the provisioning user-data's).",
)
@click.option("--agent-bundle-url", default="", help="Where nodes fetch the agent's wheels.")
@click.option(
    "--tls/--no-tls",
    default=True,
    show_default=True,
    help="etcd on mutual TLS with the cluster's own CA (--no-tls: open to its network).",
)
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    size: int,
    flavour: str,
    network_cidr: str,
    node_ips: tuple[str, ...],
    installer_url: str | None,
    agent_bundle_url: str,
    tls: bool,
) -> None:
    """Make a cluster: a discovery URL from the installer, its network, its user-data.

    On TLS (the default) the container makes the cluster's CA (kept in the state dir,
    0600). A node whose address is given gets its key and certificate in its user-data;
    a member whose address is found at boot makes its key then, and gets its
    certificate from the panel (vulcano serve), with a token only its user-data holds.
    """
    with service_errors():
        clusters.check_fields(name, size, flavour, network_cidr, node_ips, tls)
    store = store_of(ctx)
    with service_errors():
        installer = Installer.configured(state_dir_of(ctx), installer_url)
        members = clusters.etcd_size(size)
        enrolment.check_ready(state_dir_of(ctx), tls, members, node_ips)
        record = clusters.create(
            store,
            name,
            size,
            flavour,
            network_cidr,
            installer=installer,
            node_ips=node_ips,
            agent_bundle_url=agent_bundle_url,
            prefix=ctx.find_root().params.get("prefix") or DEFAULT_PREFIX,
            tls=tls,
        )
    click.echo(
        f"cluster {record.name}: {record.size} nodes ({record.etcd_size} etcd members), "
        f"{record.flavour}, network {record.network}"
    )
    click.echo(f"discovery {record.discovery_url}")
    click.echo(f"user-data: vulcano cluster user-data {record.name} --node N (1-{record.size})")


@cluster.command("list")
@list_options
@click.pass_context
def list_(
    ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
) -> None:
    """Clusters: CLUSTER SIZE FLAVOUR NETWORK ETCD."""
    with service_errors():
        found = clusters.list_clusters(store_of(ctx))
    print_table(
        [_row(r) for r in found],
        columns=_COLUMNS,
        known=_KNOWN,
        fields=fields,
        no_legend=no_legend,
        as_json=as_json,
    )


@cluster.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """One cluster: its settings, discovery URL, endpoints and nodes."""
    with service_errors():
        record = clusters.get_cluster(store_of(ctx), name)
    row = _row(record)
    row["nodes"] = ",".join(
        f"{record.node_name(i)}/{record.node_ip(i)}" for i in range(1, record.size + 1)
    )
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    for key in [*_KNOWN, "nodes"]:
        click.echo(f"{key.upper()}\t{row[key]}")


@cluster.command("renew")
@click.argument("name")
@click.pass_context
def renew(ctx: click.Context, name: str) -> None:
    """Sign the renewal requests of a TLS cluster's machines now (the relay does it
    on every beat): each agent asks when 2/3 of its certificate's life has passed."""
    store = store_of(ctx)
    with service_errors(), clusters.connect(store, name) as cluster:
        done = certificates.sign_requests(store, cluster)
    for renewal in done:
        if renewal.signed:
            click.echo(
                f"Signed a renewed certificate for {renewal.hostname} ({renewal.machine_id})"
            )
        else:
            click.echo(f"Refused machine {renewal.machine_id}: {renewal.reason}", err=True)
    if not done:
        click.echo("No renewal requests")


@cluster.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Forget a cluster (its machines keep running; its user-data is no longer served)."""
    with service_errors():
        record = clusters.delete(store_of(ctx), name)
    click.echo(f"deleted cluster {record.name}")


@cluster.command("user-data")
@click.argument("name")
@click.option("--node", default=1, show_default=True, type=int, help="Which node (1-based).")
@click.pass_context
def user_data(ctx: click.Context, name: str, node: int) -> None:
    """Print a node's user-data, ready to paste into a cloud's custom data."""
    with service_errors():
        document = nodes.user_data(store_of(ctx), name, node)
    sys.stdout.write(document.text)


@cluster.command("join-token")
@click.argument("name")
@click.option(
    "--ttl",
    default=policy.JOIN_TOKEN_TTL,
    show_default=True,
    type=int,
    help="Seconds the token lasts.",
)
@click.option("--revoke", is_flag=True, help="End the current token; make none.")
@click.option(
    "--panel-url",
    envvar=jointokens.PANEL_URL_VAR,
    default="",
    help="The panel's URL, as nodes reach it.",
)
@click.pass_context
def join_token(ctx: click.Context, name: str, ttl: int, revoke: bool, panel_url: str) -> None:
    """Make a new join token (the old stops working), or --revoke it; prints it once.

    A node's cloud-init fetches its user-data with `#include` of the printed URL
    (replace N with the node's number).
    """
    store = store_of(ctx)
    with service_errors():
        if revoke:
            jointokens.revoke(store, name)
            click.echo(f"cluster {name}: join token revoked")
            return
        token, expires = jointokens.issue(store, name, ttl)
        record = clusters.get_cluster(store, name)
    url = panel_url.rstrip("/") + jointokens.join_path(name, "N", token)
    click.echo(f"token {token}")
    click.echo(f"expires {timestamp(expires)}")
    click.echo(f"url {url}")
    if record.flavour == "flatcar":
        include = {"ignition": {"version": "3.3.0", "config": {"replace": {"source": url}}}}
        click.echo(f"include {json.dumps(include, separators=(',', ':'))}")
    else:
        click.echo(f"include #include {url}")


@cluster.command("endpoints")
@click.argument("name")
@click.argument("endpoints", required=False)
@click.pass_context
def endpoints(ctx: click.Context, name: str, endpoints: str | None) -> None:
    """Record where the cluster's etcd answers, and write its network config there.

    Without ENDPOINTS they are learned from the members registered under the cluster's
    discovery URL; with none registered yet the network config stays in the store.
    """
    store = store_of(ctx)
    with service_errors():
        if endpoints is None:
            learned = discovery.member_client_urls(clusters.get_cluster(store, name))
            if not learned:
                click.echo(f"cluster {name}: no member has come up yet; network config kept")
                return
            endpoints = ",".join(learned)
        clusternetwork.set_endpoints(store, name, endpoints)
        outcome = clusternetwork.write_network(store, name)
    click.echo(f"cluster {name}: endpoints {endpoints}; network config {outcome}")


commands: list[click.Command] = [cluster]
