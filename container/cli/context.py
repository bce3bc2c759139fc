"""How a command reaches its cluster, and how the service layer's errors are shown.

The `vulcano` group puts a `Cluster` on click's context; a command run on its own (in a
test, say) gets one through ``obj=``. Errors: a cluster address that cannot be used is a
usage error (exit 2), every other error Vulcano's message (exit 1, `vulcano.clierrors`).

The container's database (the audit log, clusters) is opened on first use from the
state directory: the group's ``--state-dir`` when it has one, else ``VULCANO_STATE_DIR``,
else /var/lib/vulcano.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import click

from container.services.cluster import Cluster
from container.services.errors import ClusterAddressError, ClusterInputError, UnitSourceError
from container.services.provisioning import DEFAULT_STATE_DIR, STATE_DIR_VAR, prepare_state_dir
from container.store import Store, open_store
from vulcano.clierrors import reported

# Where the group leaves the state dir, and the store once a command opened it.
_STATE_DIR = "vulcano.state_dir"
_STORE = "vulcano.store"


def set_state_dir(ctx: click.Context, state_dir: Path) -> None:
    """The group's --state-dir, for `state_dir_of` and `store_of` (nothing is opened)."""
    ctx.meta[_STATE_DIR] = state_dir


def state_dir_of(ctx: click.Context) -> Path:
    """The state directory the command works in: the group's ``--state-dir``, else the
    environment's ``VULCANO_STATE_DIR`` (a command run on its own), else the default."""
    found = ctx.meta.get(_STATE_DIR)
    if found is not None:
        return Path(found)
    return Path(os.environ.get(STATE_DIR_VAR) or DEFAULT_STATE_DIR)


def store_of(ctx: click.Context) -> Store:
    """The state dir's database, opened (made and migrated) on the first command needing it."""
    store = ctx.meta.get(_STORE)
    if store is None:
        with reported():
            store = open_store(prepare_state_dir(state_dir_of(ctx)))
        ctx.meta[_STORE] = store
    assert isinstance(store, Store)
    return store


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
        except ClusterInputError as exc:
            raise click.BadParameter(exc.message, param_hint=exc.field) from None


@contextlib.contextmanager
def unit_arguments() -> Iterator[None]:
    """Unit arguments we cannot use are bad parameters (exit 2), named UNIT."""
    try:
        yield
    except UnitSourceError as exc:
        raise click.BadParameter(str(exc), param_hint="UNIT") from None
