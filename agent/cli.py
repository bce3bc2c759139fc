"""The `vulcano-agent` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Vulcano's node agent: joins the cluster, builds the overlay, runs units."""
