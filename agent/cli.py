"""The `vulcano-agent` command line.

Exit codes: 0 success, 1 a refused or failed operation (the message says why), 2 bad
usage (click's own), 4 (`run`) this machine was decommissioned (`vulcano machine
remove`): the node's systemd unit does not restart the agent then
(RestartPreventExitStatus).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from agent import policy
from agent.config import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, ENDPOINT_ENVVARS, resolve
from agent.overlay import nft
from agent.overlay.sandboxes import NodeSandboxes
from agent.signals import stop_on_signals
from agent.statedir import StateDirBusy, StateLock
from agent.tlsflags import tls_options, tls_options_from_env
from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp
from vulcano.clierrors import reported
from vulcano.errors import MachineDecommissioned, VulcanoError
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace, segment_to_cidr
from vulcano.network import NetworkConfig, NetworkConfigError, check_overlap, parse
from vulcano.records import Machine

log = logging.getLogger("agent")

# `run` exits with this when the machine was removed from the cluster on purpose.
EXIT_DECOMMISSIONED = 4


class _AgentCommands(click.Group):
    """The agent's commands; `balancer`'s (a process of its own) are imported when used,
    so `run` and the short-lived commands do not load the balancer's modules."""

    _LAZY = "balancer"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), self._LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == self._LAZY and cmd_name not in self.commands:
            from agent.balancer.command import balancer

            self.add_command(balancer)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_AgentCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vulcano", prog_name="vulcano-agent")
def main() -> None:
    """Vulcano's node agent: joins the cluster, builds the overlay, runs units."""


# --- run ------------------------------------------------------------------------------


@main.command()
@click.option(
    "--etcd-endpoints",
    "--endpoint",
    "etcd_endpoints",
    help="Comma-separated etcd client URLs (also VULCANO_ETCD_ENDPOINTS, VULCANO_ENDPOINT).",
)
@click.option("--public-ip", help="This node's underlay IPv4 address.")
@click.option("--machine-id", help="Node id (default: /etc/machine-id, or one generated once).")
@click.option("--state-dir", help=f"State directory (default {DEFAULT_STATE_DIR}).")
@click.option("--metadata", help="Node metadata as k=v,k2=v2.")
@click.option("--ttl", help="Machine record lease TTL in seconds (default 10).")
@click.option("--subnet-ttl", help="Subnet lease TTL in seconds (default 86400).")
@click.option(
    "--sample-interval",
    help=f"Seconds between heartbeat samples (default {policy.SAMPLE_INTERVAL}).",
)
@click.option("--overlay/--no-overlay", default=None, help="Build the overlay (default on).")
@click.option("--prefix", help=f"Cluster keyspace prefix (default {DEFAULT_PREFIX}).")
@click.option(
    "--ssh-host-key-dir",
    help="Where sshd's ssh_host_*_key.pub are, to publish them (default /etc/ssh).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML config file (also VULCANO_CONFIG).",
)
@tls_options
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def run(config_file: Path | None, verbose: bool, **flags: Any) -> None:
    """Join the cluster and keep the overlay programmed until SIGTERM.

    Every option can also come from a config file or a VULCANO_<OPTION> variable;
    flags win over the environment, which wins over the file.
    """
    from agent.app import build

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with reported():
        config = resolve(flags, config_file)
    agent = build(config)
    stop_on_signals(agent.stop)
    refused: MachineDecommissioned | None = None
    with reported():
        try:
            agent.run()
        except MachineDecommissioned as exc:
            refused = exc
    if refused is not None or agent.registration.decommissioned.is_set():
        click.echo(f"vulcano-agent: {refused or 'this machine was decommissioned'}", err=True)
        sys.exit(EXIT_DECOMMISSIONED)


# --- network --------------------------------------------------------------------------


@main.group()
def network() -> None:
    """The cluster network config, and this node's data path."""


@network.command("init")
@click.option(
    "--etcd-endpoints",
    "--endpoint",
    "etcd_endpoints",
    envvar=list(ENDPOINT_ENVVARS),
    required=True,
    help="Comma-separated etcd client URLs.",
)
@tls_options_from_env
@click.option("--network", "cidr", required=True, help="Cluster network, e.g. 10.244.0.0/16.")
@click.option("--subnet-len", default="24", show_default=True, help="Prefix length per node.")
@click.option("--subnet-min", help="First subnet to hand out (default: the second one).")
@click.option("--subnet-max", help="Last subnet to hand out (default: the last one).")
@click.option("--vni", default="1", show_default=True, help="VXLAN network identifier.")
@click.option("--port", default="8472", show_default=True, help="VXLAN UDP port.")
@click.option("--prefix", envvar="VULCANO_PREFIX", default=DEFAULT_PREFIX, show_default=True)
@click.option(
    "--replace", is_flag=True, help="Replace a different config (only when no subnet is leased)."
)
def network_init(
    etcd_endpoints: str,
    cidr: str,
    subnet_len: str,
    subnet_min: str | None,
    subnet_max: str | None,
    vni: str,
    port: str,
    prefix: str,
    replace: bool,
    cacert: str | None,
    cert: str | None,
    key: str | None,
) -> None:
    """Write the cluster's network config to etcd (refusing invalid or overlapping ones).

    With --replace, running agents re-program their node for the new config (VXLAN
    VNI/port, nftables, subnet.env) without a restart.
    """
    data: dict[str, Any] = {"network": cidr, "subnet_len": subnet_len, "vni": vni, "port": port}
    if subnet_min:
        data["subnet_min"] = subnet_min
    if subnet_max:
        data["subnet_max"] = subnet_max
    try:
        keyspace = Keyspace(prefix)
        config = parse(data)
        hosts = [host for host, _ in vulcano_etcd.parse_endpoints(etcd_endpoints)]
        check_overlap(config, hosts)
        tls = vulcano_etcd.tls_files(etcd_endpoints, cacert, cert, key)
    except (NetworkConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    client = etcdhttp.connect(etcd_endpoints, tls=tls)
    try:
        outcome = _with_deadline(
            "writing the network config",
            lambda: _write_network_config(client, keyspace, config, replace),
        )
    finally:
        client.close()
    click.echo(f"{outcome}: {config.to_json()}")


def _write_network_config(
    client: Any, keyspace: Keyspace, config: NetworkConfig, replace: bool
) -> str:
    key = keyspace.network_config
    ips = []
    for value, _ in client.get_prefix(keyspace.machines):
        try:
            ips.append(Machine.from_json(value).public_ip)
        except (ValueError, KeyError, TypeError):
            continue
    try:
        check_overlap(config, ips)
    except NetworkConfigError as exc:
        raise click.ClickException(str(exc)) from None
    value, meta = client.get(key)
    if meta is None:
        ok, _ = client.transaction(
            compare=[client.transactions.version(key) == 0],
            success=[client.transactions.put(key, config.to_json())],
            failure=[],
        )
        if ok:
            return "initialised"
        raise click.ClickException(
            "another network config was written at the same moment; run again"
        )
    try:
        current = NetworkConfig.from_json(value)
    except NetworkConfigError:
        current = None
    if current == config:
        return "unchanged"
    if not replace:
        raise click.ClickException(
            f"the network is already initialised with {value.decode(errors='replace')}; "
            "use --replace to change it (running agents pick the change up; every leased "
            "subnet must stay valid under the new config)"
        )
    # from the keys, so a record nobody can read still counts as leased
    plen = len(keyspace.subnets)
    leased = [
        ipaddress.IPv4Network(segment_to_cidr(meta.key.decode()[plen:]))
        for _, meta in client.get_prefix(keyspace.subnets, keys_only=True)
    ]
    outside = [str(subnet) for subnet in leased if not config.contains_subnet(subnet)]
    if outside:
        raise click.ClickException(
            f"cannot replace the network config: leased subnet(s) {', '.join(outside[:5])} "
            "would fall outside it (same subnet length, inside the network and the "
            "subnet range); run `vulcano-agent network down` on those nodes first"
        )
    ok, _ = client.transaction(
        compare=[client.transactions.mod(key) == meta.mod_revision],
        success=[client.transactions.put(key, config.to_json())],
        failure=[],
    )
    if not ok:
        raise click.ClickException("the network config changed meanwhile; run again")
    return "replaced"


def _with_deadline(what: str, call: Any) -> Any:
    """call() retried while etcd is unreachable, until CLI_ETCD_DEADLINE."""
    deadline = time.monotonic() + policy.CLI_ETCD_DEADLINE
    with reported():
        return vulcano_etcd.retry_while_unreachable(
            call, what, deadline=deadline, backoff=policy.DAEMON_RETRY
        )


def _state_dir(value: str | None) -> tuple[Path, bool]:
    if value is None:
        return DEFAULT_STATE_DIR, False
    if not value.strip():
        raise click.ClickException("--state-dir: empty path")
    return Path(value), True


@network.command("down")
@click.option("--state-dir", envvar="VULCANO_STATE_DIR", help="The agent's state directory.")
def network_down(state_dir: str | None) -> None:
    """Remove this node's overlay: nftables rules, VXLAN device, bridge, subnet.env, and
    give its subnet lease back to the cluster."""
    from agent.overlay.datapath import DataPath

    directory, given = _state_dir(state_dir)
    lock = StateLock(directory)
    if directory.is_dir():
        try:
            lock.acquire()
        except StateDirBusy:
            raise click.ClickException(
                f"an agent is running with {directory}: stop it first, or it rebuilds the overlay"
            ) from None
    try:
        removed_nft = nft.present()
        if removed_nft:
            nft.remove()
        dp = DataPath()
        try:
            removed = dp.teardown()
        finally:
            dp.close()
        env = (directory if given else DEFAULT_RUN_DIR) / "subnet.env"
        env.unlink(missing_ok=True)
        released, why_not = _release_subnets(directory)
    except VulcanoError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    what = removed + (["nftables table " + nft.TABLE] if removed_nft else [])
    what += [f"subnet lease {s}" for s in released]
    click.echo("removed: " + (", ".join(what) if what else "nothing (the overlay was down)"))
    if why_not:
        click.echo(f"warning: {why_not}", err=True)


def _release_subnets(directory: Path) -> tuple[list[str], str]:
    """This node's subnet leases given back, or why they could not be (they then expire)."""
    from agent.overlay.leases import release
    from agent.statedir import NodeState

    node = NodeState.load(directory)
    if node is None:
        return [], ""  # no agent ever ran here: nothing of ours is leased
    client = etcdhttp.connect(node.etcd_endpoints, tls=node.tls())
    try:
        leases = release(client, Keyspace(node.prefix), node.machine_id)
    except Exception as exc:
        why = vulcano_etcd.client_error_message(exc)
        if why is None:
            raise
        return [], f"subnet lease not given back ({why}); it expires after its TTL"
    finally:
        client.close()
    return [str(lease.subnet) for lease in leases], ""


# --- sandbox --------------------------------------------------------------------------


@main.group()
def sandbox() -> None:
    """Container sandboxes: network namespaces on the overlay."""


def _sandboxes(state_dir: str | None) -> NodeSandboxes:
    directory, _ = _state_dir(state_dir)
    return NodeSandboxes(directory)


@sandbox.command("create")
@click.argument("name")
@click.option("--state-dir", envvar="VULCANO_STATE_DIR", help="The agent's state directory.")
def sandbox_create(name: str, state_dir: str | None) -> None:
    """Create sandbox NAME and print its overlay address."""
    sandboxes = _sandboxes(state_dir)
    try:
        with reported():
            address = _with_deadline("creating the sandbox", lambda: sandboxes.create(name))
    finally:
        sandboxes.close()
    click.echo(address)


@sandbox.command("list")
@click.option("--state-dir", envvar="VULCANO_STATE_DIR", help="The agent's state directory.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-legend", is_flag=True, help="Omit the header line.")
def sandbox_list(state_dir: str | None, as_json: bool, no_legend: bool) -> None:
    """List this node's sandboxes."""
    found = _sandboxes(state_dir).list()
    if as_json:
        click.echo(json.dumps([{"name": s.name, "address": s.ip} for s in found]))
        return
    if not no_legend:
        click.echo("NAME\tADDRESS")
    for s in found:
        click.echo(f"{s.name}\t{s.ip}")


@sandbox.command("delete")
@click.argument("name")
@click.option("--state-dir", envvar="VULCANO_STATE_DIR", help="The agent's state directory.")
def sandbox_delete(name: str, state_dir: str | None) -> None:
    """Delete sandbox NAME (its namespace, veth and address)."""
    sandboxes = _sandboxes(state_dir)
    try:
        with reported():
            _with_deadline("deleting the sandbox", lambda: sandboxes.delete(name))
    finally:
        sandboxes.close()
