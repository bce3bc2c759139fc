"""The alerts command: ask the hosted installer for a test alert to the install's destinations."""

from __future__ import annotations

import click

from container.cli.context import service_errors, state_dir_of
from container.services.installer import INSTALLER_URL_VAR, Installer


@click.command("test-alert")
@click.option(
    "--installer-url",
    envvar=INSTALLER_URL_VAR,
    help="The hosted installer of this install (the provisioning user-data's).",
)
@click.pass_context
def test_alert(ctx: click.Context, installer_url: str | None) -> None:
    """Send a test alert to the e-mail addresses and webhooks set on the install's page.

    Exits 1 when the installer cannot be reached or refuses, or when any destination
    did not take the alert (or none is set).
    """
    with service_errors():
        installer = Installer.configured(state_dir_of(ctx), installer_url)
        sent, failed = installer.send_test_alert()
    click.echo(f"test alert: {sent} delivered, {failed} failed")
    if failed or not sent:
        hint = "" if sent or failed else " (set them on the install's page)"
        raise click.ClickException(f"not every destination took the test alert{hint}")


commands: list[click.Command] = [test_alert]
