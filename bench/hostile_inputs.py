"""Hostile input at the size limits: how long the pure layers take on their worst inputs.

    python -m bench.hostile_inputs [--repeats 5]

The tests prove these inputs give the right answer; this prints how long each takes at
the limit the project sets, beside an ordinary input of the same size, so a quadratic
path shows as a large ratio. Goals: every worst case well under a second or two on
2 cores (the limits are in vulcano/units.py, vulcano/fleetoptions.py, vulcano/network.py,
and for user-data the 64 KiB document of vulcano/cloudconfig.py and appengine/forms.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from vulcano import cloudconfig, network, nodeconfig, sshkeys, units
from vulcano.lab.sshkeys import rsa_line


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _user_data_cases() -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    limit = cloudconfig.MAX_DOCUMENT_BYTES
    node = nodeconfig.NodeSpec("node-1", "10.1.2.3", "https://d.example/x")
    # a discovery URL that just fits: quoted, escaped and parsed four times over
    fits = "https://d.example/" + "%" * (limit // 4)
    too_big = "https://d.example/" + "é" * limit
    keys = "\n".join(rsa_line(4096, f"k{i}") for i in range(sshkeys.MAX_KEYS))
    many = cloudconfig.ProvisionerSpec(
        "prod", tuple(sshkeys.parse_keys(keys)), "cloud-init", "r.example/p:1", 3
    )
    few = replace(many, ssh_keys=many.ssh_keys[:1])

    def refused(spec: nodeconfig.NodeSpec) -> object:
        try:
            return nodeconfig.render_node(spec)
        except cloudconfig.DocumentTooLarge as exc:
            return exc

    return [
        (
            f"node user-data, a {len(fits) // 1024} KiB discovery URL",
            lambda: nodeconfig.render_node(replace(node, discovery_url=fits)),
            lambda: nodeconfig.render_node(node),
        ),
        (
            f"node user-data, a {len(too_big.encode()) // 1024} KiB URL (refused: too large)",
            lambda: refused(replace(node, discovery_url=too_big)),
            lambda: nodeconfig.render_node(node),
        ),
        (
            f"provisioning user-data, {sshkeys.MAX_KEYS} RSA-4096 keys (vs 1)",
            lambda: cloudconfig.render_provisioner(many),
            lambda: cloudconfig.render_provisioner(few),
        ),
    ]


def _cases() -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    lines = units.MAX_UNIT_FILE_BYTES // 3 - 10
    continued = "[Unit]\nA=" + "x\\\n" * lines + "y\n"
    plain = "[Unit]\n" + "A=xy\n" * (lines * 3 // 5)
    worst_glob, name = "*a" * 127 + "b", "a" * 255
    huge = network.parse({"network": "192.0.0.0/3", "subnet_len": 28})
    small = network.parse({"network": "10.244.0.0/16", "subnet_len": 24})
    taken = {ipaddress.IPv4Network("192.0.0.16/28")}
    return [
        (
            f"unit file of {units.MAX_UNIT_FILE_BYTES // 1024} KiB continued lines",
            lambda: units.parse(continued),
            lambda: units.parse(plain),
        ),
        (
            "Conflicts= glob '*a'x127+'b' against a 255-char name",
            lambda: units.glob_matches(worst_glob, name),
            lambda: units.glob_matches("web@*", name),
        ),
        (
            "subnet pick among 33,554,432 /28s (vs 255 /24s)",
            lambda: network.pick_subnet(huge, taken, random.Random(1)),
            lambda: network.pick_subnet(small, set(), random.Random(1)),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for what, worst, ordinary in _cases() + _user_data_cases():
        w = _median_seconds(worst, args.repeats)
        o = _median_seconds(ordinary, args.repeats)
        rows.append((what, w, o, w / o if o else float("inf")))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'input at the limit':<{width}}  {'worst s':>9}  {'ordinary s':>10}  {'ratio':>7}")
    for what, w, o, ratio in rows:
        print(f"{what:<{width}}  {w:>9.4f}  {o:>10.4f}  {ratio:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
