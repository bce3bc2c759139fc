"""The `vulcano` command line: the operator's tool, with fleetctl's commands."""

from __future__ import annotations

import click

from container import unitcmds
from vulcano.keyspace import DEFAULT_PREFIX


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint",
    envvar="VULCANO_ENDPOINT",
    default="http://127.0.0.1:2379",
    show_default=True,
    help="etcd client URLs of the cluster, comma-separated.",
)
@click.option(
    "--prefix",
    envvar="VULCANO_PREFIX",
    default=DEFAULT_PREFIX,
    show_default=True,
    help="The cluster's key prefix in etcd.",
)
@click.pass_context
def main(ctx: click.Context, endpoint: str, prefix: str) -> None:
    """Operate a Vulcano cluster."""
    cluster = unitcmds.Cluster(endpoint, prefix)
    ctx.obj = cluster
    ctx.call_on_close(cluster.close)


unitcmds.register(main)
