"""The `vulcano` command line: the operator's tool, with fleetctl's commands.

The group names the cluster (`--etcd-endpoints`, `--prefix`, and fleetctl's SSH flags,
`--tunnel` among them: `container.cli.ssh`) and hands a `Cluster` to the commands,
grouped by concept: clusters, machines, units, checks, journal, ssh, audit, compose. Every
change a
command makes is audited (as the OS user at this host) into the state directory's
database, opened only when a change is made. Each command parses its
flags, calls one function of the service layer (`container.services`) and prints;
`serve` runs the admin panel (`container.panel`) under gunicorn.
"""

from __future__ import annotations

from typing import Any

import click

from container.cli import (
    alerts,
    audit,
    checks,
    clusters,
    compose,
    journal,
    keeper,
    machines,
    relay,
    serve,
    ssh,
    units,
)
from container.cli.context import service_errors, set_state_dir, store_of
from container.services import clusters as clusters_service
from container.services.audit import Actor, AuditLog
from container.services.cluster import DEFAULT_ENDPOINTS, Cluster
from vulcano import etcd
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
@click.option(
    "--cluster",
    "cluster_name",
    envvar="VULCANO_CLUSTER",
    help="A cluster this container made: its recorded etcd endpoints and prefix "
    "(instead of --etcd-endpoints and --prefix).",
)
@click.option(
    "--cacert",
    "--ca-file",
    "cacert",
    envvar="VULCANO_CACERT",
    help="CA bundle that etcd's server certificates are checked against (https:// endpoints).",
)
@click.option(
    "--cert",
    "--cert-file",
    "cert",
    envvar="VULCANO_CERT",
    help="Client certificate (PEM) presented to etcd.",
)
@click.option(
    "--key",
    "--key-file",
    "key",
    envvar="VULCANO_KEY",
    help="Private key (PEM) of --cert.",
)
@ssh.global_options
@click.pass_context
def main(
    ctx: click.Context,
    /,
    etcd_endpoints: str,
    prefix: str,
    cluster_name: str | None,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    **ssh_flags: Any,
) -> None:
    """Operate a Vulcano cluster.

    https:// endpoints need --cacert, and --cert with --key when etcd requires client
    certificates (etcdctl's flags; fleetctl's --ca-file, --cert-file, --key-file too).
    """
    tunnel, timeout, settings = ssh.settings_from(ssh_flags)
    set_state_dir(ctx, settings.state_dir)
    tls = None
    if cluster_name:
        with service_errors():
            named = clusters_service.connect(store_of(ctx), cluster_name)
        etcd_endpoints, prefix = named.endpoints, named.prefix
        if not (cacert or cert or key):
            tls = named.tls  # the container's own certificate for the cluster it made
    if tls is None and (cacert or cert or key or "https:" in etcd_endpoints):
        try:
            tls = etcd.tls_files(etcd_endpoints, cacert, cert, key)
        except (etcd.EndpointError, etcd.TLSFileError) as exc:
            raise click.UsageError(str(exc)) from None
    # every change is audited as this OS user; the database opens only when one is made
    audit_log = AuditLog(lambda: store_of(ctx))
    cluster = Cluster(
        etcd_endpoints,
        prefix,
        timeout=timeout,
        tls=tls,
        tunnel=tunnel,
        ssh=settings,
        audit=audit_log,
        actor=Actor.of_this_process(),
        name=cluster_name,
    )
    ctx.obj = cluster
    ctx.call_on_close(cluster.close)


for _command in (
    *machines.commands,
    *units.commands,
    *checks.commands,
    *journal.commands,
    *audit.commands,
    *serve.commands,
    *relay.commands,
    *keeper.commands,
    *clusters.commands,
    *ssh.commands,
    *alerts.commands,
    *compose.commands,
):
    main.add_command(_command)
