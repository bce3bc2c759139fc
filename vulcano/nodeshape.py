"""What a rendered node document writes, and its shape: how `vulcano.nodeconfig` checks
that a node's values changed none of its template's structure.

The two configuration files (etcd's YAML, the agent's TOML) are parsed and compared by
their keys and nesting; the rest of the document by `vulcano.cloudconfig.shape`.
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any
from urllib.parse import unquote

import yaml

from vulcano import cloudconfig
from vulcano.cloudconfig import InvalidDocument

DATA_URL = "data:,"


def _file_entries(data: Any) -> list[tuple[dict[str, Any], str]]:
    """Every file a parsed node document writes, with the key holding its content."""
    entries = [(e, "content") for e in data.get("write_files", [])]
    storage = data.get("storage", {}) if isinstance(data, dict) else {}
    entries += [(e, "contents") for e in storage.get("files", [])]
    return entries


def written_file(data: Any, path: str) -> str:
    """The content the node's boot writes to `path`, from a parsed node document."""
    for entry, key in _file_entries(data):
        if entry.get("path") != path:
            continue
        if key == "content":
            content: str = entry["content"]
            return content
        source: str = entry["contents"]["source"]
        if not source.startswith(DATA_URL):
            raise InvalidDocument(f"{path} is not a plain data URL")
        return unquote(source[len(DATA_URL) :])
    raise InvalidDocument(f"the node document writes no {path}")


def shapes(data: Any, etcd_config_path: str, agent_config_path: str) -> tuple[Any, Any, Any]:
    """The document's shape with etcd's and the agent's configuration abstracted, and
    those files' shapes."""
    inner = yaml.safe_load(written_file(data, etcd_config_path))
    try:
        agent = tomllib.loads(written_file(data, agent_config_path))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidDocument(f"the agent's configuration does not parse: {exc}") from None
    outer = copy.deepcopy(data)
    for entry, key in _file_entries(outer):
        if entry.get("path") in (etcd_config_path, agent_config_path):
            entry[key] = "<configuration>"
    # Metadata keys are the user's; the table's shape is how many pairs it holds.
    metadata = agent.pop("metadata", None)
    agent_shape = (_structure(agent), type(metadata).__name__, len(metadata or {}))
    return cloudconfig.shape(outer), _structure(inner), agent_shape


def _structure(value: Any) -> Any:
    """Keys and nesting only: in etcd's file every leaf is one quoted scalar."""
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return type(value).__name__
