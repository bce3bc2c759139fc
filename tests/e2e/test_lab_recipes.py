"""The lab's recipes, without building anything: sources, hooks, digests, inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vulcano.lab import images, rootfs

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""

ONE_LINE = """\
deb http://mirror.example/debian-security bookworm-security main contrib # security
deb [arch=amd64] https://packages.cloud.google.com/apt cloud-sdk-bookworm main
# deb http://commented.example/debian bookworm main
deb http://mirror.example/debian trixie main
"""


def test_apt_sources_keep_the_debian_suites_of_every_format(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list").write_text(ONE_LINE)
    assert rootfs.apt_sources("bookworm", tmp_path) == (
        "deb http://mirror.example/debian-security bookworm-security main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm-updates main",
    )


def test_no_debian_source_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    assert rootfs.apt_sources("bookworm", tmp_path) == (
        "deb http://deb.debian.org/debian bookworm main",
    )


@pytest.mark.parametrize(
    "content",
    ["plain\n", "it's quoted 'twice'\n", '$(reboot) `id` "$1" %s %%\n', "", "no newline"],
)
def test_a_write_file_hook_writes_exactly_its_content(tmp_path: Path, content: str) -> None:
    hook = rootfs.write_file_hook("/etc/some dir/file.cfg", content, 0o640)
    subprocess.run(["sh", "-c", hook, "sh", str(tmp_path)], check=True, timeout=10)
    written = tmp_path / "etc" / "some dir" / "file.cfg"
    assert written.read_text() == content
    assert written.stat().st_mode & 0o777 == 0o640


def test_a_recipe_s_tag_is_the_digest_of_everything_it_is_made_of() -> None:
    recipe = rootfs.Rootfs("x", packages=("a",), sources=("deb http://m/debian bookworm main",))
    changed = [
        rootfs.Rootfs("x", packages=("a", "b"), sources=recipe.sources),
        rootfs.Rootfs("x", packages=("a",), hooks=("true",), sources=recipe.sources),
        rootfs.Rootfs("x", packages=("a",), changes=("CMD []",), sources=recipe.sources),
        rootfs.Rootfs("x", packages=("a",), sources=("deb http://n/debian bookworm main",)),
    ]
    assert recipe.reference == f"localhost/x:{recipe.key}"
    assert len({recipe.key, *(c.key for c in changed)}) == 1 + len(changed)


def test_the_image_takes_the_sources_but_not_caches_or_the_lab(tmp_path: Path) -> None:
    for rel in [
        "pyproject.toml",
        "README.md",
        "vulcano/core.py",
        "vulcano/__pycache__/core.cpython-311.pyc",
        "vulcano/lab/machines.py",
        "agent/cli.py",
        "agent/x.pyc",
        "templates/cloud-config/node.j2",
        "tests/test_x.py",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert [p.as_posix() for p in images.source_files(tmp_path)] == [
        "README.md",
        "agent/cli.py",
        "pyproject.toml",
        "templates/cloud-config/node.j2",
        "vulcano/core.py",
    ]


def test_the_image_takes_every_cloud_config_template_the_renderers_name() -> None:
    """On the real tree: the made-up tree above names a template no renderer has."""
    from vulcano import cloudconfig, nodeconfig

    folder = Path("templates") / "cloud-config"
    real = sorted(p.relative_to(images.REPO) for p in (images.REPO / folder).iterdir())
    assert real  # there is something to check
    taken = set(images.source_files())
    assert [p for p in real if p not in taken] == []
    named = {f.template for f in cloudconfig.FLAVOURS.values()} | set(nodeconfig.FLAVOURS.values())
    named |= {nodeconfig.ADDRESS_SCRIPT, nodeconfig.INSTALL_AGENT_SCRIPT}
    named |= {getattr(nodeconfig, n) for n in dir(nodeconfig) if n.endswith("_TEMPLATE")}
    assert sorted(n for n in named if folder / n not in taken) == []
