"""The `vulcano` command line: the operator's tool, with fleetctl's commands.

The group names the cluster (`--etcd-endpoints`, `--prefix`, and fleetctl's SSH flags,
`--tunnel` among them: `container.cli.ssh`) and hands a `Cluster` to the commands,
grouped by concept: machines, units, journal, ssh. Each command parses its
flags, calls one function of the service layer (`container.services`) and prints;
`serve` runs the admin panel (`container.panel`) under gunicorn.
"""

from __future__ import annotations

from typing import Any

import click

from container.cli import journal, machines, serve, ssh, units
from container.services.cluster import DEFAULT_ENDPOINTS, Cluster
from vulcano.keyspace import DEFAULT_PREFIX

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vulcano", prog_name="vulcano")
@click.option(
    "--etcd-endpoints",
    "--endpoint",
    "etcd_endpoints",
    envvar=["VULCANO_ETCD_ENDPOINTS", "VULCANO_ENDPOINT"],
    default=DEFAULT_ENDPOINTS,
    show_default=True,
    help="etcd client URLs of the cluster, comma-separated (--endpoint is an alias).",
)
@click.option(
    "--prefix",
    envvar="VULCANO_PREFIX",
    default=DEFAULT_PREFIX,
    show_default=True,
    help="The cluster's key prefix in etcd.",
)
@ssh.global_options
@click.pass_context
def main(ctx: click.Context, /, etcd_endpoints: str, prefix: str, **ssh_flags: Any) -> None:
    """Operate a Vulcano cluster."""
    tunnel, timeout, settings = ssh.settings_from(ssh_flags)
    cluster = Cluster(etcd_endpoints, prefix, timeout=timeout, tunnel=tunnel, ssh=settings)
    ctx.obj = cluster
    ctx.call_on_close(cluster.close)


for _command in (
    *machines.commands,
    *units.commands,
    *journal.commands,
    *serve.commands,
    *ssh.commands,
):
    main.add_command(_command)
