"""etcd's TLS flags as every `vulcano-agent` command spells them: etcdctl's --cacert,
--cert and --key, with fleetctl's --ca-file, --cert-file and --key-file as aliases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def _tls_option_list(from_env: bool) -> list[Callable[[Any], Any]]:
    def env(name: str) -> str | None:
        return name if from_env else None

    return [
        click.option(
            "--cacert",
            "--ca-file",
            "cacert",
            help="CA bundle etcd's server certificates are checked against "
            "(https:// endpoints; also VULCANO_CACERT).",
            envvar=env("VULCANO_CACERT"),
        ),
        click.option(
            "--cert",
            "--cert-file",
            "cert",
            help="Client certificate presented to etcd (also VULCANO_CERT).",
            envvar=env("VULCANO_CERT"),
        ),
        click.option(
            "--key",
            "--key-file",
            "key",
            help="Private key of --cert (also VULCANO_KEY).",
            envvar=env("VULCANO_KEY"),
        ),
    ]


def tls_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """etcdctl's --cacert, --cert, --key (fleetctl's --ca-file, ... too), for commands that
    layer the environment and the config file themselves (`agent.config`)."""
    for option in reversed(_tls_option_list(from_env=False)):
        fn = option(fn)
    return fn


def tls_options_from_env(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The same flags, falling back to VULCANO_CACERT, VULCANO_CERT, VULCANO_KEY."""
    for option in reversed(_tls_option_list(from_env=True)):
        fn = option(fn)
    return fn
