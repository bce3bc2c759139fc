"""Check= lines as `check add` and the unit file give them: the defaults that depend on the
interval, and the check-state record's round trip."""

from __future__ import annotations

import pytest

from vulcano.endpoints import CheckResult, CheckStates, CheckStatus, parse_check
from vulcano.errors import UnitFileError


@pytest.mark.parametrize(
    ("line", "timeout"),
    [
        ("http :80", 2.0),  # the default
        ("http :80 interval=1s", 1.0),  # the default never outlasts the interval
        ("tcp :80 interval=500ms", 0.5),
        ("tcp :80 interval=1s timeout=300ms", 0.3),
    ],
)
def test_timeout_default_fits_the_interval(line: str, timeout: float) -> None:
    assert parse_check(line).timeout == timeout


def test_an_explicit_timeout_longer_than_the_interval_is_refused() -> None:
    with pytest.raises(UnitFileError, match="timeout= must be more than 0 and at most"):
        parse_check("http :80 interval=1s timeout=2s")


def test_check_states_keep_their_note() -> None:
    st = CheckStates(
        "web.service",
        "m1",
        {"alive": CheckResult(CheckStatus.FAILING, "refused", 3.0, 4)},
        "restarted at ...",
    )
    back = CheckStates.from_json(st.to_json())
    assert back == st and back.status == CheckStatus.FAILING
    assert CheckStates.from_json('{"unit": "u", "machine_id": "m"}').note == ""
