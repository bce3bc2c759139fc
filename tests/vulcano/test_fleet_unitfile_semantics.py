"""Unit files mean what fleet (and systemd) made of them, or are refused saying why.

Cases written from fleet's job/unit packages and systemd's conf-parser; docs/fleet.md
lists where Vulcano refuses what fleet silently misread.
"""

from __future__ import annotations

import pytest

from vulcano import unitnames, units
from vulcano.errors import UnitFileError, UnitNameError
from vulcano.units import FleetOptions


def _opts(x_fleet: str, name: str = "u.service") -> FleetOptions:
    return units.load(f"[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n{x_fleet}", name)[1]


QUOTED = [
    ('MachineOf="a.service"\n', FleetOptions(machine_of=("a.service",))),
    ('Conflicts="b*"\n', FleetOptions(conflicts=("b*",))),
    ('Conflicts="b*" "c?.service"\n', FleetOptions(conflicts=("b*", "c?.service"))),
    ('Conflicts="b* c*"\n', FleetOptions(conflicts=("b*", "c*"))),
    ('MachineID="0123abcd"\n', FleetOptions(machine_id="0123abcd")),
    ('Replaces="old.service"\n', FleetOptions(replaces=("old.service",))),
    ('Global="true"\n', FleetOptions(global_=True)),
    (
        'MachineMetadata="disk=ssd" "region=eu"\n',
        FleetOptions(machine_metadata=(("disk", "ssd"), ("region", "eu"))),
    ),
    (
        'MachineMetadata="role=web server"\n',
        FleetOptions(machine_metadata=(("role", "web server"),)),
    ),
    ('MachineOf="%p-db.service"\n', FleetOptions(machine_of=("u-db.service",))),
]


@pytest.mark.parametrize(("x_fleet", "expected"), QUOTED, ids=[q[0].strip() for q in QUOTED])
def test_fleet_strips_quotes_from_every_x_fleet_value(x_fleet: str, expected: FleetOptions) -> None:
    assert _opts(x_fleet) == expected


LEGACY = [
    ("X-ConditionMachineID=0123abcd\n", FleetOptions(machine_id="0123abcd")),
    ("X-ConditionMachineOf=db.service\n", FleetOptions(machine_of=("db.service",))),
    ("X-Conflicts=cache*\n", FleetOptions(conflicts=("cache*",))),
    ("X-ConditionMachineMetadata=disk=ssd\n", FleetOptions(machine_metadata=(("disk", "ssd"),))),
    # both spellings: the modern MachineID wins, whichever comes first
    (
        "X-ConditionMachineID=aaaaaaaa\nMachineID=bbbbbbbb\n",
        FleetOptions(machine_id="bbbbbbbb"),
    ),
    (
        "MachineID=bbbbbbbb\nX-ConditionMachineID=aaaaaaaa\n",
        FleetOptions(machine_id="bbbbbbbb"),
    ),
    # fleet takes the first value of the key it uses
    ("MachineID=cccccccc\nMachineID=dddddddd\n", FleetOptions(machine_id="cccccccc")),
    # a boot id is ignored when a machine id is given, as fleet did
    (
        "X-ConditionMachineBootID=feedface\nX-ConditionMachineID=aaaaaaaa\n",
        FleetOptions(machine_id="aaaaaaaa"),
    ),
    # the lists take the old spelling first, then the new, together
    (
        "MachineOf=b.service\nX-ConditionMachineOf=a.service\n",
        FleetOptions(machine_of=("a.service", "b.service")),
    ),
    ("Conflicts=new*\nX-Conflicts=old*\n", FleetOptions(conflicts=("old*", "new*"))),
    (
        "MachineMetadata=disk=ssd\nX-ConditionMachineMetadata=region=eu\n",
        FleetOptions(machine_metadata=(("region", "eu"), ("disk", "ssd"))),
    ),
]


@pytest.mark.parametrize(("x_fleet", "expected"), LEGACY, ids=[c[0].strip() for c in LEGACY])
def test_legacy_option_names_and_fleets_precedence(x_fleet: str, expected: FleetOptions) -> None:
    assert _opts(x_fleet) == expected


TRUTHY = [
    ("Global=true\n", True),
    ("Global=YES\n", True),
    ("Global=1\n", True),
    ("Global=On\n", True),
    ("Global=t\n", True),
    ("Global=false\n", False),
    ("Global=no\n", False),
    ("Global=0\n", False),
    ("Global=off\n", False),
    ("Global=f\n", False),
    ("Global=true\nGlobal=false\n", False),  # the last one wins
    ("Global=no\nGlobal=yes\n", True),
    ("Global=true\nGlobal=\n", False),  # an empty assignment resets
]


@pytest.mark.parametrize(("x_fleet", "is_global"), TRUTHY, ids=[c[0].strip() for c in TRUTHY])
def test_truthy_words_are_fleets(x_fleet: str, is_global: bool) -> None:
    assert _opts(x_fleet).global_ is is_global


REFUSED = [
    # fleet read any other word as false: a typo would quietly run the unit once
    ("Global=y\n", "line 5: Global= wants true/yes/1/on/t", "fleet read any other word as false"),
    ("Global=ture\n", "line 5: Global= wants", "fleet read any other word as false"),
    # fleet dropped malformed entries, which widened where the unit could run
    ("MachineMetadata=region\n", "line 5: MachineMetadata= wants key=value", "'region'"),
    ("MachineMetadata=a=b=c\n", "line 5: MachineMetadata= wants key=value (one '='", "ignored"),
    ('MachineMetadata="=eu"\n', "line 5: MachineMetadata=", "'=eu'"),
    ('MachineMetadata="disk=" "region=eu"\n', "line 5: MachineMetadata=", "'disk='"),
    ('Conflicts="b*\n', "line 5: Conflicts= has an unbalanced", "write it that way"),
    ("X-ConditionMachineBootID=feedface\n", "line 5: X-ConditionMachineBootID=", "MachineID="),
    ('MachineID="a" "b"\n', "line 5: MachineID= takes one machine id", ""),
    ("X-Replaces=x.service\n", "line 5: unknown [X-Fleet] option X-Replaces=", ""),
    # a unit that must sit beside a peer it conflicts with or replaces never fits
    (
        "MachineOf=db.service\nConflicts=db*\n",
        "line 6: Conflicts=db* matches db.service, which MachineOf= (line 5)",
        "drop one of them",
    ),
    (
        "X-ConditionMachineOf=db.service\nReplaces=db.service\n",
        "line 6: Replaces=db.service matches db.service, which MachineOf= (line 5)",
        "",
    ),
    # legacy spellings count in the invalid combinations too
    ("X-ConditionMachineID=abc\nX-Conflicts=x*\n", "Conflicts= cannot be combined with", ""),
]


@pytest.mark.parametrize(
    ("x_fleet", "message", "why"), REFUSED, ids=[c[0].strip() for c in REFUSED]
)
def test_what_fleet_misread_is_refused_naming_the_line(
    x_fleet: str, message: str, why: str
) -> None:
    with pytest.raises(UnitFileError) as err:
        _opts(x_fleet, "bad.service")
    assert message in str(err.value)
    assert why in str(err.value)


def test_unquoted_space_separated_metadata_is_read_as_pairs() -> None:
    # fleet dropped this line (one value with three '='); Vulcano reads the pairs
    assert _opts("MachineMetadata=role=edge region=eu\n").machine_metadata == (
        ("role", "edge"),
        ("region", "eu"),
    )


NAMES = [
    ("web@a@b.service", ("web", "a@b")),
    ("web@@.service", ("web", "@")),
    ("sock@x.socket", ("sock", "x")),
    ("tick@1.timer", ("tick", "1")),
    ("watch@etc.path", ("watch", "etc")),
    ("multi@.target", ("multi", "")),
    ("data.mount", ("data", None)),
    ("dev-sda.device", ("dev-sda", None)),
]


@pytest.mark.parametrize(("name", "parts"), NAMES, ids=[n[0] for n in NAMES])
def test_unit_names_fleet_accepts(name: str, parts: tuple[str, str | None]) -> None:
    un = unitnames.parse_name(name)
    assert (un.prefix, un.instance) == parts


def test_an_at_in_the_instance_keeps_its_template() -> None:
    _, opts = units.load(
        "[Service]\nExecStart=/bin/true\n[X-Fleet]\nConflicts=%p@*\nMachineOf=db@%i.service\n",
        "web@a@b.service",
    )
    assert opts == FleetOptions(machine_of=("db@a@b.service",), conflicts=("web@*",))
    assert unitnames.parse_name("web@a@b.service").template == "web@.service"


REFUSED_NAMES = [
    ("data@.mount", "a .mount unit cannot be a template"),
    ("dev@sda.device", "a .device unit cannot be a template"),
    ("home@x.automount", "cannot be a template"),
    ("s@.swap", "cannot be a template"),
    ("user@1.slice", "cannot be a template"),
    ("x@.scope", "cannot be a template"),
    ("before.snapshot", "systemd dropped snapshot units"),
    ("bus.busname", "systemd dropped busname units"),
    ("@x.service", "not a valid unit name"),
]


@pytest.mark.parametrize(("name", "message"), REFUSED_NAMES, ids=[n[0] for n in REFUSED_NAMES])
def test_unit_names_and_templates_fleet_refuses(name: str, message: str) -> None:
    with pytest.raises(UnitNameError) as err:
        unitnames.parse_name(name)
    assert message in str(err.value)


CONTINUATIONS = [
    # a final backslash continues; systemd turns it into a space
    ("ExecStart=/bin/echo a \\\n  b\n", [("ExecStart", "/bin/echo a    b")]),
    ("ExecStart=/bin/echo a\\\nb\n", [("ExecStart", "/bin/echo a b")]),
    # a comment inside a continuation is skipped
    ("ExecStart=/bin/echo a \\\n# note\n  b\n", [("ExecStart", "/bin/echo a    b")]),
    # backslash then spaces: not a continuation, the value keeps its backslash
    (
        "ExecStart=/bin/echo a \\  \nRestart=always\n",
        [("ExecStart", "/bin/echo a \\"), ("Restart", "always")],
    ),
    # an escaped backslash does not continue either
    (
        "Environment=P=C:\\\\\nRestart=always\n",
        [("Environment", "P=C:\\\\"), ("Restart", "always")],
    ),
    # CRLF line ends still continue
    ("ExecStart=/bin/echo a\\\r\nb\r\n", [("ExecStart", "/bin/echo a b")]),
]


@pytest.mark.parametrize(("body", "expected"), CONTINUATIONS)
def test_line_continuations_read_as_systemd_reads_them(
    body: str, expected: list[tuple[str, str]]
) -> None:
    unit = units.parse("[Service]\n" + body, "x.service")
    assert [(o.key, o.value) for o in unit.options] == expected


def test_a_backslash_followed_by_spaces_is_explained_when_the_next_line_breaks() -> None:
    with pytest.raises(UnitFileError) as err:
        units.parse("[Service]\nExecStart=/usr/bin/docker run \\ \n  -p 80:80 nginx\n", "x.service")
    msg = str(err.value)
    assert "line 3: expected Key=Value" in msg
    assert "line 2 ends in a backslash followed by spaces" in msg
    assert "remove the spaces after the backslash" in msg


MANGLED = [
    ("foo", "foo.service"),
    ("foo.service", "foo.service"),
    ("foo.socket", "foo.socket"),
    ("units/foo", "foo.service"),
    ("./units/foo.timer", "foo.timer"),
    ("web@", "web@.service"),
    ("web@1", "web@1.service"),
    ("foo.target", "foo.target"),  # fleetctl made foo.target.service (docs/fleet.md)
    ("app.v2", "app.v2.service"),
]


@pytest.mark.parametrize(("arg", "name"), MANGLED)
def test_fleetctl_name_mangling(arg: str, name: str) -> None:
    assert unitnames.mangle(arg) == name
