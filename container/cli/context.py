"""How a command reaches its cluster, and how the service layer's errors are shown.

The `vulcano` group puts a `Cluster` on click's context; a command run on its own (in a
test, say) gets one through ``obj=``. Errors: a cluster address that cannot be used is a
usage error (exit 2), every other error Vulcano's message (exit 1, `vulcano.clierrors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from container.services.cluster import Cluster
from container.services.errors import ClusterAddressError, UnitSourceError
from vulcano.clierrors import reported


def cluster_of(ctx: click.Context) -> Cluster:
    """The cluster the command talks to."""
    cluster = ctx.find_object(Cluster)
    if cluster is None:
        raise click.UsageError("no cluster: give --etcd-endpoints")
    return cluster


@contextlib.contextmanager
def service_errors() -> Iterator[None]:
    """Show the errors of the service calls made inside the block as click's."""
    with reported():
        try:
            yield
        except ClusterAddressError as exc:
            raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def unit_arguments() -> Iterator[None]:
    """Unit arguments we cannot use are bad parameters (exit 2), named UNIT."""
    try:
        yield
    except UnitSourceError as exc:
        raise click.BadParameter(str(exc), param_hint="UNIT") from None
