"""What an operator does to units: submit, load, start, stop, unload, destroy, and cat.

fleet's lifecycle: a unit file is submitted once (its content is immutable; destroy it
or `replace=True`), then moved between desired states one command at a time. `load` and
`start` submit the files they are given first and create instances of submitted
templates. None of these wait for the cluster; `container.services.waiting` does.

Each change etcd took is recorded in the cluster's audit log (when it has one): a
submit with the whole file as an added diff, a replace with the diff of old to new, a
destroy with the file as removed; a move between desired states with what it was
before. A write that changes nothing is not recorded (submitting the same content, a
stop of a stopped unit), except `start`: every start is a write (it counts, and retries
a failed unit), so every start is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from container.services.audit import unit_diff
from container.services.cluster import Cluster
from container.services.errors import RegistryError, UnitContentMissing, UnitNotFound
from vulcano import unitnames
from vulcano.records import DesiredState, UnitSource, UnitSpec
from vulcano.registry import Registry
from vulcano.units import content_hash


def submit(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Store unit files in the cluster (desired state: inactive); the names given.

    Sources without text name units already submitted (or instances of a submitted
    template) and change nothing; any other is UnitNotFound, before anything changes.
    """
    return _submit(cluster, list(sources), replace)


def _submit(
    cluster: Cluster,
    sources: list[UnitSource],
    replace: bool,
    desired: DesiredState | None = None,
) -> list[str]:
    """``desired``: the units given with a file (not templates) move there as they are
    stored, each in one transaction with its file; the caller moves the others."""
    with_text = [s for s in sources if s.text is not None]
    cluster.audit_ready()
    with cluster.registry() as registry:
        # a name alone must be a unit (or a template) submitted before, or given here
        _require_submitted(
            registry,
            [s.name for s in sources if s.text is None],
            given={s.name for s in with_text},
        )
        specs = _specs(registry, [s.name for s in with_text]) if cluster.audit else {}
        before = {n: (s.hash, registry.text(s.hash)) for n, s in specs.items()}
        failure: RegistryError | None = None
        changed = with_text
        if with_text:
            try:
                registry.submit(with_text, replace=replace, desired=desired)
            except RegistryError as exc:  # what it stored before failing is recorded too
                failure, changed = exc, [s for s in with_text if s.name in exc.done]
    for source in changed if cluster.audit else []:
        assert source.text is not None
        old = before.get(source.name)
        if old is None:
            cluster.record("submit", source.name, diff=unit_diff(source.name, None, source.text))
        elif old[0] != content_hash(source.text):
            cluster.record(
                "replace",
                source.name,
                detail=f"hash {old[0][:7]} -> {content_hash(source.text)[:7]}",
                diff=unit_diff(source.name, old[1], source.text),
            )
    for source in changed if cluster.audit else []:
        if desired is not None and not unitnames.is_template(source.name):
            _record_move(cluster, source.name, specs.get(source.name), desired, _ACTIONS[desired])
    if failure is not None:
        raise failure
    return [s.name for s in sources]


def load(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Submit what has content, then schedule the units without starting them."""
    return _submit_and_move(cluster, sources, DesiredState.LOADED, replace)


def start(cluster: Cluster, sources: Iterable[UnitSource], *, replace: bool = False) -> list[str]:
    """Submit what has content, then launch the units (instantiating templates)."""
    return _submit_and_move(cluster, sources, DesiredState.LAUNCHED, replace)


def stop(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units, keeping them loaded on their machine."""
    return _move(cluster, list(names), DesiredState.LOADED, "stop")


def unload(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units and take them off their machines (they stay submitted)."""
    return _move(cluster, list(names), DesiredState.INACTIVE)


def destroy(cluster: Cluster, names: Iterable[str]) -> list[str]:
    """Stop units and remove them from the cluster, with content no unit uses any more."""
    names = list(names)
    cluster.audit_ready()
    failure: RegistryError | None = None
    changed = names
    with cluster.registry() as registry:
        before = _texts(registry, names) if cluster.audit else {}
        try:
            registry.destroy(names)
        except RegistryError as exc:  # what it removed before failing is recorded too
            failure, changed = exc, list(exc.done)
    for name in changed if cluster.audit else []:
        _, text = before.get(name, ("", None))
        cluster.record("destroy", name, diff=unit_diff(name, text, None) if text else "")
    if failure is not None:
        raise failure
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
    sources = list(sources)
    names = _submit(cluster, sources, replace, desired)
    # the template file only brings the content for its instances
    instances = {unitnames.parse_name(n).template for n in names}
    names = [n for n in names if not (unitnames.is_template(n) and n in instances)]
    # a unit given with its file moved with its submit (one transaction, not two)
    moved = {s.name for s in sources if s.text is not None and not unitnames.is_template(s.name)}
    rest = [n for n in names if n not in moved]
    if rest:
        _move(cluster, rest, desired)
    return names


_ACTIONS = {
    DesiredState.INACTIVE: "unload",
    DesiredState.LOADED: "load",
    DesiredState.LAUNCHED: "start",
}


def _move(
    cluster: Cluster, names: Sequence[str], desired: DesiredState, action: str | None = None
) -> list[str]:
    cluster.audit_ready()
    failure: RegistryError | None = None
    changed = list(dict.fromkeys(names))
    with cluster.registry() as registry:
        before = _specs(registry, names) if cluster.audit else {}
        try:
            registry.set_desired(names, desired)
        except RegistryError as exc:  # what it changed before failing is recorded too
            failure, changed = exc, list(exc.done)
    for name in changed if cluster.audit else []:
        old = before.get(name)
        if old is None:
            template = unitnames.parse_name(name).template
            cluster.record(
                action or _ACTIONS[desired],
                name,
                detail=f"new instance of {template} -> {desired}",
            )
        else:
            _record_move(cluster, name, old, desired, action or _ACTIONS[desired])
    if failure is not None:
        raise failure
    return list(names)


def _record_move(
    cluster: Cluster, name: str, old: UnitSpec | None, desired: DesiredState, action: str
) -> None:
    """Audit a move of ``name`` from ``old`` (None: submitted just now, inactive)."""
    was = old.desired if old is not None else DesiredState.INACTIVE
    if was == desired and desired != DesiredState.LAUNCHED:
        return  # nothing was written
    cluster.record(action, name, detail=f"{was} -> {desired}")


def _require_submitted(registry: Registry, names: Sequence[str], given: set[str]) -> None:
    """Refuse, before anything is written, a name that stands for no unit."""
    for name in names:
        if name in given or registry.spec(name) is not None:
            continue
        template = unitnames.parse_name(name).template
        if template and (template in given or registry.spec(template) is not None):
            continue
        hint = f" (nor its template {template})" if template else ""
        raise UnitNotFound(f"unit {name} is not submitted{hint}, and there is no such file")


def _specs(registry: Registry, names: Iterable[str]) -> dict[str, UnitSpec]:
    wanted = set(names)
    if len(wanted) > 8:
        return {n: s for n, s in registry.specs().items() if n in wanted}
    return {n: s for n in wanted if (s := registry.spec(n)) is not None}


def _texts(registry: Registry, names: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """The submitted units among ``names``: their content hash and text."""
    return {n: (s.hash, registry.text(s.hash)) for n, s in _specs(registry, names).items()}
