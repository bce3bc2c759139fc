"""Every bad input to the cluster commands: a clear message naming what is wrong, a
non-zero exit, and no half-made cluster in the database."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from container.services import clusters
from container.services.errors import InstallerError
from container.services.installer import Installer
from container.store import Store
from tests.container.clusters.conftest import Install, Invoke, rows
from vulcano.lab.installer import InstallerServer
from vulcano.lab.ports import reserve_port


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["Bad_Name", "--size", "3"], "NAME"),
        (["-x", "--size", "3"], "No such option"),
        (["x" * 63, "--size", "3"], "too long"),
        (["ok", "--size", "0"], "--size"),
        (["ok", "--size", "101"], "--size"),
        (["ok", "--size", "three"], "'three' is not a valid integer"),
        (["ok", "--size", "3", "--flavour", "windows"], "--flavour"),
        (["ok", "--size", "3", "--network", "10.0.0.0/33"], "--network"),
        (["ok", "--size", "3", "--network", "10.0.0.1/16"], "host bits"),
        (["ok", "--size", "3", "--network", "127.0.0.0/16"], "reserved"),
        (["ok", "--size", "300", "--network", "10.9.0.0/23"], "--size"),
        (["ok", "--size", "3", "--network", "10.9.0.0/23"], "fewer than the 3 nodes"),
        (["ok", "--size", "1", "--ip", "10.0.0.1", "--ip", "10.0.0.2"], "2 addresses for 1"),
        (["ok", "--size", "2", "--ip", "10.0.0.300"], "not an IPv4 or IPv6 address"),
        (["ok", "--size", "2", "--ip", "10.0.0.1", "--ip", "10.0.0.1"], "given twice"),
        (["ok"], "Missing option '--size'"),
    ],
)
def test_bad_create_flags_are_refused_and_store_nothing(
    vulcano: Invoke, state_dir: Path, args: list[str], named: str
) -> None:
    result = vulcano("cluster", "create", *args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert rows(state_dir) == []


def test_an_unreachable_installer_is_named_and_nothing_is_stored(
    vulcano: Invoke, state_dir: Path
) -> None:
    url = f"http://127.0.0.1:{reserve_port()}"
    result = vulcano("cluster", "create", "ok", "--size", "3", "--installer-url", url)
    assert result.exit_code == 1
    assert f"installer {url} unreachable" in result.output
    assert rows(state_dir) == []


def test_no_installer_at_all_says_how_to_name_one(vulcano: Invoke, state_dir: Path) -> None:
    result = vulcano(
        "cluster", "create", "ok", "--size", "3", env_extra={"VULCANO_INSTALLER_URL": ""}
    )
    assert result.exit_code == 1
    assert "VULCANO_INSTALLER_URL" in result.output and "--installer-url" in result.output
    assert rows(state_dir) == []


def test_a_token_the_installer_does_not_know_is_refused(vulcano: Invoke, state_dir: Path) -> None:
    (state_dir / "installer-token").write_text("A" * 43)
    result = vulcano("cluster", "create", "ok", "--size", "3")
    assert result.exit_code == 1
    assert "refused a discovery URL: 401" in result.output
    assert "no live install has this provisioner token" in result.output
    assert rows(state_dir) == []


def test_a_token_file_holding_no_token_is_refused(vulcano: Invoke, state_dir: Path) -> None:
    (state_dir / "installer-token").write_text("not a token\n")
    result = vulcano("cluster", "create", "ok", "--size", "3")
    assert result.exit_code == 1 and "does not hold a token" in result.output
    assert rows(state_dir) == []


def test_a_cluster_that_exists_already_is_left_alone(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "3").exit_code == 0
    before = rows(state_dir)
    result = vulcano("cluster", "create", "prod", "--size", "5", "--flavour", "flatcar")
    assert result.exit_code == 1
    assert "a cluster named 'prod' exists already" in result.output
    assert rows(state_dir) == before


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nosuch"],
        ["delete", "nosuch"],
        ["user-data", "nosuch"],
        ["join-token", "nosuch"],
        ["join-token", "nosuch", "--revoke"],
        ["endpoints", "nosuch", "http://127.0.0.1:2379"],
    ],
)
def test_an_unknown_cluster_is_named(vulcano: Invoke, state_dir: Path, args: list[str]) -> None:
    result = vulcano("cluster", *args)
    assert result.exit_code == 1
    assert "no cluster named 'nosuch'" in result.output
    assert rows(state_dir) == []


@pytest.mark.parametrize("node", ["0", "4", "-1"])
def test_a_node_the_cluster_does_not_have_is_refused(vulcano: Invoke, node: str) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "3").exit_code == 0
    result = vulcano("cluster", "user-data", "prod", "--node", node)
    assert result.exit_code == 2
    assert f"cluster 'prod' has nodes 1 to 3, not {node}" in result.output


@pytest.mark.parametrize("ttl", ["0", "59", "99999999"])
def test_a_join_token_ttl_out_of_range_is_refused(
    vulcano: Invoke, state_dir: Path, ttl: str
) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1").exit_code == 0
    result = vulcano("cluster", "join-token", "prod", "--ttl", ttl)
    assert result.exit_code == 2 and "--ttl" in result.output
    assert rows(state_dir)[0]["join_token_hash"] == ""


def test_bad_endpoints_are_a_usage_error(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1").exit_code == 0
    result = vulcano("cluster", "endpoints", "prod", "ftp://x")
    assert result.exit_code == 2 and "ENDPOINTS" in result.output
    assert rows(state_dir)[0]["endpoints"] == ""


def test_the_service_stores_nothing_when_the_installer_fails(store: Store) -> None:
    unreachable = Installer(f"http://127.0.0.1:{reserve_port()}")
    with pytest.raises(InstallerError, match="unreachable"):
        clusters.create(store, "ok", 3, installer=unreachable)
    assert clusters.list_clusters(store) == []


def test_an_unwritable_state_dir_is_named(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from container.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["--state-dir", str(blocker / "state"), "cluster", "list"])
    assert result.exit_code == 1
    assert f"state directory {blocker / 'state'}" in result.output


def test_a_token_file_the_unit_named_but_missing_is_refused(
    vulcano: Invoke, state_dir: Path
) -> None:
    (state_dir / "installer-token").unlink()
    result = vulcano("cluster", "create", "ok", "--size", "3")
    assert result.exit_code == 1
    assert "VULCANO_INSTALLER_TOKEN_FILE=" in result.output and "no such file" in result.output
    assert rows(state_dir) == []


def test_bad_flags_open_no_database(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "Bad_Name", "--size", "3").exit_code == 2
    assert not (state_dir / "vulcano.db").exists()


def test_a_bad_bundle_url_is_refused_before_the_installer_is_asked(
    vulcano: Invoke, state_dir: Path, installer: InstallerServer, install: Install
) -> None:
    page = f"{installer.url}/installs/{install.manage_token}"
    before = requests.get(page, timeout=10).text.count("/discovery/")
    result = vulcano("cluster", "create", "ok", "--size", "3", "--agent-bundle-url", "ftp://x/a")
    assert result.exit_code == 2
    assert "--agent-bundle-url" in result.output and "http(s) URL" in result.output
    assert rows(state_dir) == []
    # no discovery URL of the install's quota was spent on it
    assert requests.get(page, timeout=10).text.count("/discovery/") == before
