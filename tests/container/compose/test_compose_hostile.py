"""Generated Compose mappings: valid units with a report row per key, or the project's
error naming a key.

Budget (derandomized, no database: tests/conftest.py): 300 generated files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from container.compose import ComposeError, Options, Result, Runtime, convert, load_text
from vulcano import units

_WORDS = st.sampled_from(["x", "a b", "$$HOME", "${V}", "${V:-d}", "50%", '"q"', "it's", ""])
_SCALARS = st.one_of(
    _WORDS,
    st.integers(-3, 70000),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
)
_LISTS = st.lists(_SCALARS, max_size=3)
_KEYS = st.sampled_from(
    [
        "image",
        "command",
        "entrypoint",
        "environment",
        "env_file",
        "ports",
        "expose",
        "volumes",
        "depends_on",
        "restart",
        "healthcheck",
        "deploy",
        "scale",
        "labels",
        "user",
        "working_dir",
        "stop_grace_period",
        "network_mode",
        "extra_hosts",
        "build",
        "privileged",
        "frobnicate",
        "x-ext",
        "container_name",
        "ulimits",
        "init",
    ]
)
_SUB = st.dictionaries(
    st.sampled_from(["replicas", "test", "interval", "retries", "mode", "placement", "a"]),
    st.one_of(_SCALARS, _LISTS),
    max_size=3,
)
_VALUE = st.one_of(_SCALARS, _LISTS, _SUB)
_SERVICE = st.dictionaries(_KEYS, _VALUE, max_size=6).map(lambda d: {"image": "img", **d})
_SERVICES = st.dictionaries(st.sampled_from(["web", "db", "a.b", "c-1"]), _SERVICE, min_size=1)


@settings(max_examples=300)
@given(
    services=_SERVICES,
    top=st.dictionaries(st.sampled_from(["version", "volumes", "networks", "x-a", "zz"]), _VALUE),
)
def test_generated_compose_files_convert_to_units_or_name_a_key(
    services: dict[str, Any], top: dict[str, Any]
) -> None:
    text = yaml.safe_dump({"services": services, **top})
    try:
        conversion = convert(
            load_text(text, {"V": "v"}),
            Options(project="p", runtime=Runtime("podman"), base_dir=Path("/srv")),
        )
    except ComposeError as exc:
        assert exc.key is not None and str(exc).strip()
        assert exc.key == "" or exc.key.split(".")[0].split("[")[0] in {
            "services",
            *top,
            ".env line 1",
        }
        return
    keys = [r.key for r in conversion.report]
    assert len(keys) == len(set(keys))  # one row a key
    paths = [*top, *(f"services.{n}.{k}" for n, s in services.items() for k in s)]
    for path in paths:
        assert any(k == path or k.startswith((path + ".", path + "[")) for k in keys), path
    assert {r.result for r in conversion.report} <= set(Result)
    for unit in conversion.files:
        units.load(unit.text, unit.name)
