"""`vulcano cluster create|list|show|delete|user-data` against the real hosted installer:
the discovery URL is the install's own (made with the provisioning machine's token)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.container.clusters.conftest import Install, Invoke, as_json, rows
from vulcano.lab.installer import InstallerServer

DISCOVERY_RE = re.compile(r"^discovery (http://\S+/discovery/[0-9a-f]{32})$", re.MULTILINE)


def test_create_gets_the_installs_own_discovery_url(
    vulcano: Invoke, installer: InstallerServer, install: Install, state_dir: Path
) -> None:
    result = vulcano("cluster", "create", "web", "--size", "4")
    assert result.exit_code == 0, result.output
    match = DISCOVERY_RE.search(result.output)
    assert match, result.output
    url = match.group(1)
    # Made for the install: its page lists it (an anonymous token would not be there).
    page = requests.get(f"{installer.url}/installs/{install.manage_token}", timeout=10)
    assert url in page.text
    # Four machines: three etcd members, the discovery directory's size.
    size = requests.get(f"{url}/_config/size", timeout=10).json()
    assert size["node"]["value"] == "3"
    [row] = rows(state_dir)
    assert (row["name"], row["size"], row["flavour"], row["discovery_url"]) == (
        "web",
        4,
        "cloud-init",
        url,
    )


def test_list_prints_fleetctls_table_and_its_flags(vulcano: Invoke) -> None:
    assert (
        vulcano("cluster", "create", "b", "--size", "1", "--network", "10.50.0.0/16").exit_code == 0
    )
    assert vulcano("cluster", "create", "a", "--size", "3", "--flavour", "flatcar").exit_code == 0
    lines = vulcano("cluster", "list").output.splitlines()
    assert lines == [
        "CLUSTER\tSIZE\tFLAVOUR\tNETWORK\tETCD",
        "a\t3\tflatcar\t10.244.0.0/16\t3",
        "b\t1\tcloud-init\t10.50.0.0/16\t1",
    ]
    assert vulcano("cluster", "list", "--no-legend", "--fields", "cluster,size").output == (
        "a\t3\nb\t1\n"
    )
    listed = as_json(vulcano("cluster", "list", "--json", "--fields", "cluster,endpoints"))
    assert listed == [{"cluster": "a", "endpoints": "-"}, {"cluster": "b", "endpoints": "-"}]
    bad = vulcano("cluster", "list", "--fields", "nope")
    assert bad.exit_code == 2 and "unknown field 'nope'" in bad.output


def test_show_names_every_node_and_its_address(vulcano: Invoke) -> None:
    created = vulcano("cluster", "create", "db", "--size", "3", "--ip", "10.0.0.5")
    assert created.exit_code == 0, created.output
    shown = as_json(vulcano("cluster", "show", "db", "--json"))
    assert shown["nodes"] == "db-1/10.0.0.5,db-2/auto,db-3/auto"
    assert shown["network_written"] == "-"
    assert shown["join_token"] == "none"
    text = vulcano("cluster", "show", "db").output
    assert "CLUSTER\tdb\n" in text and "FLAVOUR\tcloud-init\n" in text


def test_delete_forgets_the_cluster(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "tmp", "--size", "1").exit_code == 0
    deleted = vulcano("cluster", "delete", "tmp")
    assert deleted.exit_code == 0 and deleted.output == "deleted cluster tmp\n"
    assert rows(state_dir) == []
    assert vulcano("cluster", "list", "--no-legend").output == ""


def test_user_data_prints_each_nodes_document(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "edge", "--size", "3").exit_code == 0
    first = vulcano("cluster", "user-data", "edge").output
    second = vulcano("cluster", "user-data", "edge", "--node", "2").output
    assert first.startswith("#cloud-config\n") and 'hostname: "edge-1"' in first
    assert 'hostname: "edge-2"' in second
    key = (state_dir / "id_ed25519.pub").read_text().strip()
    assert key in first and key in second
    assert (state_dir / "id_ed25519").stat().st_mode & 0o777 == 0o600


def test_the_commands_need_no_state_dir_until_they_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from container.cli import main

    missing = tmp_path / "not-yet"
    result = CliRunner().invoke(main, ["--state-dir", str(missing), "cluster", "--help"])
    assert result.exit_code == 0 and "create" in result.output
    assert not missing.exists()
