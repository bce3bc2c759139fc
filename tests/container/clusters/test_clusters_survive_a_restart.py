"""A restarted container keeps its clusters: they are in the state dir's database only."""

from __future__ import annotations

from pathlib import Path

from container.services import clusters, nodes
from container.services.installer import Installer
from container.store import open_store
from tests.container.clusters.conftest import Install, Invoke


def test_a_cluster_made_before_a_restart_is_there_after_it(
    state_dir: Path, install: Install
) -> None:
    store = open_store(state_dir)
    installer = Installer.configured(state_dir, install.installer_url)
    made = clusters.create(store, "prod", 3, "coreos-legacy", installer=installer)
    before = nodes.user_data(store, "prod", 2).text
    del store  # the container stops: nothing but the files is left

    reopened = open_store(state_dir)
    assert clusters.get_cluster(reopened, "prod") == made
    assert [c.name for c in clusters.list_clusters(reopened)] == ["prod"]
    # the same key, the same discovery URL: the same document
    assert nodes.user_data(reopened, "prod", 2).text == before


def test_the_cli_sees_what_an_earlier_run_made(vulcano: Invoke) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1").exit_code == 0
    assert vulcano("cluster", "list", "--no-legend", "--fields", "cluster").output == "prod\n"
