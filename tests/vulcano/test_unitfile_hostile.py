"""Hostile unit files: the parser never crashes, it accepts or says what is wrong."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vulcano import errors, unitnames, units

_pieces = st.sampled_from(
    [
        "[Unit]",
        "[Service]",
        "[X-Fleet]",
        "[X-Vulcano]",
        "[",
        "]",
        "=",
        "\\",
        "#",
        ";",
        "%",
        "%i",
        "%z",
        "\n",
        "\r\n",
        " ",
        "MachineID=",
        "MachineOf=",
        "MachineMetadata=",
        "Conflicts=",
        "Global=",
        "Replaces=",
        "Sandbox=",
        "ExecStart=",
        "a=b",
        "web@*",
        "true",
        '"',
        "\x00",
        "é",
    ]
)
_texts = st.one_of(st.text(max_size=400), st.lists(_pieces, max_size=60).map("".join))
_names = st.one_of(
    st.sampled_from(["web@.service", "web@1.service", "db.service"]), st.text(max_size=30)
)


@settings(max_examples=400, deadline=None)
@given(text=_texts, name=_names)
def test_any_text_is_accepted_or_refused_with_a_message(text: str, name: str) -> None:
    try:
        unit, opts = units.load(text, name)
    except errors.UnitFileError as exc:
        assert str(exc).strip()
        return
    # accepted: the model is consistent with what was read
    assert unit.text == text
    assert len(unit.hash) == 40
    assert units.FleetOptions.from_json(opts.to_json()) == opts


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=50), name=st.sampled_from(["a@b.service", "x.service"]))
def test_specifier_expansion_never_crashes(value: str, name: str) -> None:
    out = unitnames.expand_specifiers(value, name, hostname="h", machine_id="m")
    assert isinstance(out, str)
