"""The `vulcano` command line: the operator's tool, with fleetctl's commands."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate a Vulcano cluster."""
