"""The sample interval: a setting like the others (file, environment, flag), within bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import policy
from agent.cli import main
from agent.config import ConfigError, resolve

BASE = {"etcd_endpoints": "http://10.0.0.1:2379", "public_ip": "10.0.0.5"}


def test_the_default_is_the_policys() -> None:
    assert resolve(BASE, environ={}).sample_interval == policy.SAMPLE_INTERVAL == 10


def test_flag_wins_over_environment_which_wins_over_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text("sample-interval = 30\n")
    assert resolve(BASE, config_file=file, environ={}).sample_interval == 30
    env = {"VULCANO_SAMPLE_INTERVAL": "20"}
    assert resolve(BASE, config_file=file, environ=env).sample_interval == 20
    flags = {**BASE, "sample_interval": "5"}
    assert resolve(flags, config_file=file, environ=env).sample_interval == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--sample-interval: 0 must be between 1 and 3600 seconds"),
        ("3601", "--sample-interval: 3601 must be between 1 and 3600 seconds"),
        ("1.5", "--sample-interval: '1.5' is not a whole number of seconds"),
        ("ten", "--sample-interval: 'ten' is not a whole number of seconds"),
    ],
)
def test_a_sample_interval_out_of_bounds_is_refused_naming_the_flag(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        resolve({**BASE, "sample_interval": value}, environ={})


def test_run_documents_the_option() -> None:
    answer = CliRunner().invoke(main, ["run", "--help"])
    assert answer.exit_code == 0
    assert "--sample-interval" in answer.output
