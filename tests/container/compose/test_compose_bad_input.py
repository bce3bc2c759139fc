"""Compose files that cannot be converted: the project's error naming the key, quickly.

Limits (container/compose/loading.py): 1 MiB a file, 50,000 YAML nodes with aliases
expanded, 24 levels of nesting, 200 services; 100 replicas, 64 ports a service.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from container.compose import ComposeError, Options, convert, load_text
from container.compose.interpolate import read_dotenv


def _convert(text: str, env: dict[str, str] | None = None) -> None:
    convert(load_text(text, env or {}), Options(project="t", base_dir=Path("/srv")))


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("services: [\n", "", "not YAML (line 2"),
        ("- a\n- b\n", "", "a YAML list, not a mapping"),
        ("just text\n", "", "a YAML str"),
        ("", "", "the file is empty"),
        ("version: '3'\n", "services", "missing"),
        ("web:\n  image: x\n", "services", "Compose file format 1"),
        ("version: '1'\nservices: {a: {image: x}}\n", "version", "wants 2, 2.x, 3 or 3.x"),
        ("services: {}\n", "services", "no services"),
        ("services: [a]\n", "services", "wants a mapping"),
        ("services:\n  web:\n    build: .\n", "services.web.build", "build-only"),
        ("services:\n  web: {command: x}\n", "services.web", "no image"),
        ("services:\n  web: nginx\n", "services.web", "wants a mapping"),
        ("services:\n  'we b': {image: x}\n", "services.we b", "a service name"),
        (
            "services:\n  web: {image: x, deploy: {replicas: 0}}\n",
            "services.web.deploy.replicas",
            "from 1 to 100",
        ),
        (
            "services:\n  web: {image: x, deploy: {replicas: two}}\n",
            "services.web.deploy.replicas",
            "whole number",
        ),
        (
            "services:\n  web: {image: x, deploy: {replicas: true}}\n",
            "services.web.deploy.replicas",
            "whole number",
        ),
        ("services:\n  web: {image: x, scale: 1.5}\n", "services.web.scale", "whole number"),
        ("services:\n  web: {image: '${TAG'}\n", "services.web.image", "without its '}'"),
        ("services:\n  web: {image: '${TAG:?give a tag}'}\n", "services.web.image", "give a tag"),
        ("services:\n  web: {image: 'a$ b'}\n", "services.web.image", "invalid interpolation"),
        ("services:\n  web: {image: '${}'}\n", "services.web.image", "no variable name"),
        (
            "services:\n  web: {image: x, depends_on: [db]}\n",
            "services.web.depends_on.db",
            "no service 'db'",
        ),
        (
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
            "services.a.depends_on",
            "a dependency cycle",
        ),
        (
            "services:\n  web: {image: x, volumes: ['data:/data']}\n",
            "services.web.volumes[0]",
            "not declared",
        ),
        ("services:\n  web: {image: x, ports: ['0:70000']}\n", "services.web.ports[0]", "1-65535"),
        (
            "services:\n  web: {image: x, ports: ['1-100']}\n",
            "services.web.ports[0]",
            "more than 64",
        ),
        ("services:\n  web: {image: x, restart: sometimes}\n", "services.web.restart", "wants no"),
        (
            'services:\n  web: {image: x, command: ["a\\nb"]}\n',
            "services.web",
            "control character",
        ),
        (
            "services:\n  web: {image: x, healthcheck: {test: [CMD]}}\n",
            "services.web.healthcheck.test",
            "wants [CMD, ARGS...]",
        ),
        (
            "services:\n  web: {image: x, healthcheck: {test: x, interval: soon}}\n",
            "services.web.healthcheck.interval",
            "a duration",
        ),
        (
            "services:\n  web: {image: x, container_name: w, deploy: {replicas: 2}}\n",
            "services.web.container_name",
            "several replicas",
        ),
        (
            'services:\n  web: {image: x, command: "it\'s"}\n',
            "services.web.command",
            "cannot split",
        ),
        ("services:\n  1: {image: x}\n", "services", "is not a string"),
        ("services:\n  " + "w" * 300 + ": {image: x}\n", "services." + "w" * 300, "unit name"),
        ("name: 'My App!'\nservices: {a: {image: x}}\n", "name", "lowercase letters"),
        ("services:\n  web: {image: '-x'}\n", "services.web.image", "not an image reference"),
    ],
)
def test_bad_compose_input_is_refused_naming_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ComposeError) as caught:
        _convert(text)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("services: {web: {image: x, command: *a9}}")
    started = time.monotonic()
    with pytest.raises(ComposeError, match="more than 50000 YAML nodes"):
        _convert("\n".join(lines) + "\n")
    assert time.monotonic() - started < 5  # a bound on the refusal, not a benchmark


def test_a_recursive_alias_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ComposeError, match="refers to a node that contains it"):
        _convert("a: &a [*a]\nservices: {web: {image: x}}\n")
    with pytest.raises(ComposeError, match="nested deeper than 24"):
        _convert("services: " + "[" * 40 + "]" * 40 + "\n")


def test_too_large_and_too_many_services() -> None:
    with pytest.raises(ComposeError, match="larger than 1024 KiB"):
        _convert("services: {}\n#" + "x" * (1024 * 1024) + "\n")
    many = "services:\n" + "".join(f"  s{i}: {{image: x}}\n" for i in range(201))
    with pytest.raises(ComposeError, match="more than 200 services"):
        _convert(many)


def test_a_bad_dotenv_line_is_named() -> None:
    with pytest.raises(ComposeError) as caught:
        read_dotenv("A=1\nthis is not it\n")
    assert caught.value.key == ".env line 2"


def test_a_missing_required_env_file_is_named() -> None:
    with pytest.raises(ComposeError) as caught:
        _convert("services:\n  web: {image: x, env_file: nowhere.env}\n")
    assert caught.value.key == "services.web.env_file"
