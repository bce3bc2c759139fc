"""What an operator does to units: submit, load, start, stop, unload, destroy, and cat.

fleet's lifecycle: a unit file is submitted once (its content is immutable; destroy it
or `replace=True`), then moved between desired states one command at a time. `load` and
`start` submit the files they are given first and create instances of submitted
templates. None of these wait for the cluster; `container.services.waiting` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from container.services.cluster import Cluster
from container.services.errors import UnitContentMissing, UnitNotFound
from vulcano import unitnames
from vulcano.records import DesiredState, UnitSource


def submit(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Store unit files in the cluster (desired state: inactive); the names given.

    Sources without text name units already submitted and change nothing.
    """
    sources = list(sources)
    with_text = [s for s in sources if s.text is not None]
    with cluster.registry() as registry:
        if with_text:
            registry.submit(with_text, replace=replace)
    return [s.name for s in sources]


def load(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Submit what has content, then schedule the units without starting them."""
    return _submit_and_move(cluster, sources, DesiredState.LOADED, replace)


def start(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Submit what has content, then launch the units (instantiating templates)."""
    return _submit_and_move(cluster, sources, DesiredState.LAUNCHED, replace)


def stop(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units, keeping them loaded on their machine."""
    return _move(cluster, list(names), DesiredState.LOADED)


def unload(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units and take them off their machines (they stay submitted)."""
    return _move(cluster, list(names), DesiredState.INACTIVE)


def destroy(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units and remove them from the cluster, with content no unit uses any more."""
    names = list(names)
    with cluster.registry() as registry:
        registry.destroy(names)
    return names


def unit_file(cluster: Cluster, name: str) -> str:
    """The text of a submitted unit's file."""
    with cluster.registry() as registry:
        spec = registry.spec(name)
        if spec is None:
            raise UnitNotFound(f"unit {name} is not submitted")
        text = registry.text(spec.hash)
    if text is None:
        raise UnitContentMissing(f"unit {name}: content {spec.hash} is missing")
    return text


def _submit_and_move(
    cluster: Cluster, sources: Iterable[UnitSource], desired: DesiredState, replace: bool
) -> list[str]:
    """The units moved: `web@.service web@1.service` moves only the instance."""
    names = submit(cluster, sources, replace=replace)
    # the template file only brings the content for its instances
    instances = {unitnames.parse_name(n).template for n in names}
    names = [n for n in names if not (unitnames.is_template(n) and n in instances)]
    return _move(cluster, names, desired)


def _move(cluster: Cluster, names: Sequence[str], desired: DesiredState) -> list[str]:
    with cluster.registry() as registry:
        registry.set_desired(names, desired)
    return list(names)
