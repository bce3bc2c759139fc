"""A Compose file read safely: bounded size, depth and alias expansion, then interpolated.

Limits: the file at most MAX_FILE_BYTES, at most MAX_NODES YAML nodes once every alias
is expanded (a billion-laughs file is refused after looking at each distinct node once),
nesting at most MAX_DEPTH deep, at most MAX_SERVICES services. Only YAML's safe types
(``yaml.SafeLoader``): no Python objects. Mapping keys must be strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from container.compose.errors import ComposeError
from container.compose.interpolate import Interpolation, read_dotenv
from container.compose.quoting import INSTANCE

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 24
MAX_SERVICES = 200
# libyaml's parser when PyYAML has it (much faster on large files), the same safe types
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document has with aliases expanded; ComposeError past the limits."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ComposeError("", "a YAML alias refers to a node that contains it")
        if depth > MAX_DEPTH:
            raise ComposeError("", f"nested deeper than {MAX_DEPTH} levels")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_NODES:
                    break
        on_path.discard(key)
        if total > MAX_NODES:
            raise ComposeError("", f"more than {MAX_NODES} YAML nodes once aliases are expanded")
        sizes[key] = total
        return total

    return size(root, 0)


def parse_yaml(text: str) -> dict[str, Any]:
    """The top-level mapping of a Compose file's text, within the limits."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_FILE_BYTES:
        raise ComposeError("", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB")
    if INSTANCE in text:
        line = text[: text.index(INSTANCE)].count("\n") + 1
        raise ComposeError("", f"line {line}: U+E000 is a character this converter reserves")
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ComposeError("", "the file is empty; it wants a mapping with services:")
        _expanded_size(node)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeError("", f"not YAML{where}: {problem}") from None
    except RecursionError:
        raise ComposeError("", f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ComposeError("", f"the file is a YAML {_kind(data)}, not a mapping of keys")
    _check_keys(data, "")
    return data


def _check_keys(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ComposeError(path or "(top level)", f"key {k!r} is not a string")
            _check_keys(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_keys(v, f"{path}[{i}]")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


@dataclass(frozen=True)
class Loaded:
    """A Compose file's data, interpolated, and what conversion needs from beside it."""

    data: dict[str, Any]
    unset: dict[str, list[str]]  # variables without a value -> where they were used
    files: dict[str, str] = field(default_factory=dict)  # env_file path -> its text
    variables: dict[str, str] = field(default_factory=dict)  # the environment, then .env


def load_text(
    text: str, environment: Mapping[str, str] | None = None, dotenv: str | None = None
) -> Loaded:
    """Parse and interpolate: variables from ``environment``, then the ``.env`` text."""
    data = parse_yaml(text)
    variables = dict(read_dotenv(dotenv)) if dotenv else {}
    variables.update(environment or {})
    services = data.get("services")
    if isinstance(services, dict) and len(services) > MAX_SERVICES:
        raise ComposeError("services", f"more than {MAX_SERVICES} services")
    pass_ = Interpolation(variables)
    result = pass_.value(data, "")
    assert isinstance(result, dict)
    return Loaded(result, pass_.unset, variables=variables)


def _read_text(path: Path, shown: str) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ComposeError(shown, f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB")
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ComposeError(shown, f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ComposeError(shown, f"{path}: not UTF-8 text") from None


def _env_file_paths(data: dict[str, Any]) -> list[str]:
    found: list[str] = []
    services = data.get("services")
    for svc in services.values() if isinstance(services, dict) else []:
        if not isinstance(svc, dict) or "env_file" not in svc:
            continue
        entries = svc["env_file"] if isinstance(svc["env_file"], list) else [svc["env_file"]]
        for entry in entries:
            path = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(path, str) and path not in found:
                found.append(path)
    return found


def load_file(path: Path, environment: Mapping[str, str] | None = None) -> Loaded:
    """Read ``path``, the ``.env`` beside it (if any) and the env_files it names."""
    text = _read_text(path, "")
    dotenv_path = path.parent / ".env"
    dotenv = _read_text(dotenv_path, ".env") if dotenv_path.is_file() else None
    loaded = load_text(text, environment, dotenv)
    for name in _env_file_paths(loaded.data):
        env_path = path.parent / name
        if env_path.is_file():
            loaded.files[name] = _read_text(env_path, f"env_file {name}")
    return loaded
