"""Unit files in the styles fleet users wrote parse to the options fleet would have read."""

from __future__ import annotations

import pytest

from vulcano import errors, unitnames, units
from vulcano.errors import UnitFileError
from vulcano.units import FleetOptions

DOCKER_WEB = """\
[Unit]
Description=Web server %i
After=docker.service
Requires=docker.service

[Service]
TimeoutStartSec=0
# pull first; the leading '-' ignores a failure
ExecStartPre=-/usr/bin/docker kill web-%i
ExecStartPre=-/usr/bin/docker rm web-%i
ExecStartPre=/usr/bin/docker pull nginx:1.25
ExecStart=/usr/bin/docker run --rm --name web-%i \\
    -p 80:80 \\
    nginx:1.25
ExecStop=/usr/bin/docker stop web-%i

[X-Fleet]
Conflicts=web@*.service
"""

SIDEKICK = """\
[Unit]
Description=Announce web@%i
BindsTo=web@%i.service
After=web@%i.service

[Service]
EnvironmentFile=/etc/environment
ExecStart=/bin/sh -c "while true; do \\
  etcdctl set /services/web/%H:%i '{\\"host\\": \\"%H\\", \\"port\\": 80}' --ttl 60; \\
  sleep 45; done"
ExecStop=/usr/bin/etcdctl rm /services/web/%H:%i

[X-Fleet]
MachineOf=web@%i.service
"""

GLOBAL_LOGGER = """\
[Unit]
Description=Ship the journal
; semicolon comments too

[Service]
ExecStart=/bin/sh -c 'journalctl -f | nc logs.example 514'
Restart=always
RestartSec=5

[X-Fleet]
Global=true
MachineMetadata=role=worker
MachineMetadata=role=edge region=eu
"""

PINNED = """\
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true

[X-Fleet]
MachineID=0123abcd
"""

REPLACER = """\
[Unit]
Description=new api

[Service]
ExecStart=/usr/bin/api --port 8080

[X-Fleet]
Replaces=api-old.service
MachineMetadata="disk=ssd"
"""

DEPRECATED = """\
[Service]
ExecStart=/bin/sleep 1000

[X-Fleet]
X-ConditionMachineOf=db.service
X-Conflicts=cache*.service
"""

SANDBOXED = """\
[Service]
ExecStart=/usr/bin/python3 -m http.server 8000

[X-Vulcano]
Sandbox=yes

[X-Fleet]
Conflicts=web@*
"""

PARSED = [
    ("web@1.service", DOCKER_WEB, FleetOptions(conflicts=("web@*.service",))),
    ("announce@7.service", SIDEKICK, FleetOptions(machine_of=("web@7.service",))),
    (
        "logger.service",
        GLOBAL_LOGGER,
        FleetOptions(
            global_=True,
            machine_metadata=(("role", "worker"), ("role", "edge"), ("region", "eu")),
        ),
    ),
    ("once.service", PINNED, FleetOptions(machine_id="0123abcd")),
    (
        "api.service",
        REPLACER,
        FleetOptions(replaces=("api-old.service",), machine_metadata=(("disk", "ssd"),)),
    ),
    (
        "worker.service",
        DEPRECATED,
        FleetOptions(machine_of=("db.service",), conflicts=("cache*.service",)),
    ),
    ("web@2.service", SANDBOXED, FleetOptions(conflicts=("web@*",), sandbox=True)),
]


@pytest.mark.parametrize(("name", "text", "expected"), PARSED, ids=[p[0] for p in PARSED])
def test_real_world_units_parse_to_fleet_options(
    name: str, text: str, expected: FleetOptions
) -> None:
    unit, opts = units.load(text, name)
    assert opts == expected
    assert unit.hash == units.content_hash(text)


def test_continuation_lines_read_as_systemd_and_keep_the_first_line_number() -> None:
    unit = units.parse(DOCKER_WEB, "web@.service")
    [start] = unit.find("Service", "ExecStart")
    # systemd turns each final backslash into a space and keeps the next line as written
    assert start.value == "/usr/bin/docker run --rm --name web-%i      -p 80:80      nginx:1.25"
    assert start.line == 12


def test_repeated_keys_keep_order_and_empty_assignment_resets() -> None:
    unit = units.parse("[Service]\nEnvironment=A=1\nEnvironment=B=2\n", "x.service")
    assert unit.values("Service", "Environment") == ["A=1", "B=2"]
    unit = units.parse("[Service]\nEnvironment=A=1\nEnvironment=\nEnvironment=C=3\n", "x.service")
    assert unit.values("Service", "Environment") == ["C=3"]


def test_metadata_values_of_one_key_are_ored_and_keys_anded() -> None:
    _, opts = units.load(GLOBAL_LOGGER, "logger.service")
    assert opts.metadata_requirements() == {"role": ["worker", "edge"], "region": ["eu"]}


def test_template_and_instance_names() -> None:
    t = unitnames.parse_name("web@.service")
    assert t.is_template and t.instantiate("3") == "web@3.service"
    i = unitnames.parse_name("web@3.service")
    assert i.is_instance and i.template == "web@.service" and i.instance == "3"
    plain = unitnames.parse_name("db.service")
    assert plain.instance is None and plain.template is None


def test_specifiers_expand_for_the_builtin_runner() -> None:
    got = unitnames.expand_specifiers(
        "%n %N %p %i %H %m 100%%", "web@3.service", hostname="h1", machine_id="abc"
    )
    assert got == "web@3.service web@3 web 3 h1 abc 100%"


def test_fleet_expands_only_its_specifiers_in_x_fleet() -> None:
    assert unitnames.expand_specifiers("%p-%i %H", "a@b.service", fleet_only=True) == "a-b %H"


def test_json_roundtrip_of_options() -> None:
    for name, text, _ in PARSED:
        _, opts = units.load(text, name)
        assert FleetOptions.from_json(opts.to_json()) == opts


REFUSED = [
    (
        "[X-Fleet]\nMachineID=abc\nMachineOf=db.service\n",
        "line 3: MachineOf= cannot be combined with MachineID= (line 2)",
    ),
    (
        "[X-Fleet]\nMachineID=abc\nConflicts=x*\n",
        "line 3: Conflicts= cannot be combined with MachineID=",
    ),
    (
        "[X-Fleet]\nGlobal=true\nMachineID=abc\n",
        "line 3: MachineID= cannot be combined with Global= (line 2)",
    ),
    (
        "[X-Fleet]\nMachineID=abc\nReplaces=x\n",
        "line 3: Replaces= cannot be combined with MachineID=",
    ),
    (
        "[X-Fleet]\nGlobal=yes\nMachineOf=db.service\n",
        "line 3: MachineOf= cannot be combined with Global=",
    ),
    (
        "[X-Fleet]\nReplaces=old.service\n\nGlobal=1\n",
        "line 4: Global= cannot be combined with Replaces= (line 2)",
    ),
    (
        "[X-Fleet]\nConflicts=a*\nReplaces=b\n",
        "line 3: Replaces= cannot be combined with Conflicts=",
    ),
    ("[X-Fleet]\nGlobal=maybe\n", "line 2: Global= wants true/yes/1/on/t or false"),
    ("[X-Fleet]\nMachineMetadata=region\n", "line 2: MachineMetadata= wants key=value"),
    ("[X-Fleet]\nMachineOf=not a unit\n", "line 2: MachineOf="),
    ("[X-Fleet]\nMachinID=abc\n", "line 2: unknown [X-Fleet] option MachinID="),
    ("[Service]\nExecStart=/bin/true\nthis is not an option\n", "line 3: expected Key=Value"),
    ("ExecStart=/bin/true\n", "line 1: ExecStart= comes before any [Section]"),
    ("[Service\nExecStart=/bin/true\n", "line 1: malformed section header"),
    ("[Service]\nExecStart=/bin/date +%z\n", "line 2: unknown specifier '%z'"),
    ("", "empty unit file"),
    ("# only a comment\n", "empty unit file"),
    ("[Service]\nExec Start=/bin/true\n", "line 2: invalid key"),
    ("[X-Vulcano]\nSandbox=perhaps\n", "line 2: Sandbox= wants a boolean"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_invalid_units_are_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(UnitFileError) as err:
        units.load(text, "bad.service")
    assert message in str(err.value)
    assert str(err.value).startswith("bad.service")


@pytest.mark.parametrize(
    "name",
    ["", "web", "web.exe", "@.service", "we b.service", "a/b.service", "x" * 300 + ".service"],
)
def test_invalid_unit_names_are_refused(name: str) -> None:
    with pytest.raises(errors.UnitNameError):
        unitnames.parse_name(name)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("web@*", "web@1.service", True),
        ("web@*.service", "web@.service", True),
        ("web@?.service", "web@10.service", False),
        ("cache[0-9].service", "cache3.service", True),
        ("api.service", "api.service.bak", False),
    ],
)
def test_conflict_globs(pattern: str, name: str, matches: bool) -> None:
    assert units.glob_matches(pattern, name) is matches
