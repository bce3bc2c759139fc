"""The panel's fixtures (app, logged-in browser, the 'lab' cluster and its machines) for
the health page's tests."""

from __future__ import annotations

from tests.container.panel.conftest import (  # noqa: F401 - fixtures, found by name
    admin,
    app,
    browser,
    lab,
    lab_cluster,
    panel,
    settings,
    state_dir,
    store,
)
