"""SSH public keys are parsed field by field: type, base64, lengths, nothing trailing."""

from __future__ import annotations

import base64
import shutil

import pytest

from tests.conftest import require
from vulcano.lab.sshkeys import (
    ed25519_line,
    keygen,
    line_from_blob,
    mpint,
    rsa_line,
    ssh_string,
)
from vulcano.sshkeys import SSHKeyError, parse_key, parse_keys


@pytest.mark.parametrize(
    ("key_type", "bits", "expected_type", "expected_bits"),
    [
        ("ed25519", None, "ssh-ed25519", 256),
        ("rsa", 3072, "ssh-rsa", 3072),
        ("ecdsa", 256, "ecdsa-sha2-nistp256", 256),
        ("ecdsa", 384, "ecdsa-sha2-nistp384", 384),
        ("ecdsa", 521, "ecdsa-sha2-nistp521", 521),
    ],
)
def test_keys_made_by_ssh_keygen_are_accepted(
    key_type: str, bits: int | None, expected_type: str, expected_bits: int
) -> None:
    require(shutil.which("ssh-keygen") is not None, "needs OpenSSH's ssh-keygen")
    line = keygen(key_type, bits)
    key = parse_key(line)
    assert key.type == expected_type
    assert key.bits == expected_bits
    assert key.comment == "test@vulcano"
    assert key.line == line


def test_security_key_types_are_accepted() -> None:
    blob = ssh_string(b"sk-ssh-ed25519@openssh.com") + ssh_string(b"k" * 32) + ssh_string(b"ssh:")
    assert parse_key(line_from_blob("sk-ssh-ed25519@openssh.com", blob)).bits == 256
    point = b"\x04" + b"p" * 64
    blob = (
        ssh_string(b"sk-ecdsa-sha2-nistp256@openssh.com")
        + ssh_string(b"nistp256")
        + ssh_string(point)
        + ssh_string(b"ssh:")
    )
    assert parse_key(line_from_blob("sk-ecdsa-sha2-nistp256@openssh.com", blob)).bits == 256


def test_comment_keeps_its_spaces_and_a_key_may_have_none() -> None:
    assert parse_key(ed25519_line("alice at work")).comment == "alice at work"
    assert parse_key(ed25519_line("")).comment == ""


ED_BLOB_PREFIX = ssh_string(b"ssh-ed25519")


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("", "expected"),
        ("ssh-ed25519", "expected"),
        ("ssh-dss AAAAB3NzaC1kc3M= x", "not supported"),
        ('command="rm -rf /" ' + ed25519_line(), "not supported"),
        ("ssh-ed25519 not*base64 x", "not valid base64"),
        ("ssh-ed25519 QUJ x", "not valid base64"),
        (
            line_from_blob("ssh-ed25519", ssh_string(b"ssh-rsa") + ssh_string(b"k" * 32)),
            "not ssh-ed25519",
        ),
        (line_from_blob("ssh-ed25519", ED_BLOB_PREFIX + ssh_string(b"k" * 31)), "not 32 bytes"),
        (
            line_from_blob("ssh-ed25519", ED_BLOB_PREFIX + ssh_string(b"k" * 32) + b"x"),
            "stray bytes",
        ),
        (line_from_blob("ssh-ed25519", ED_BLOB_PREFIX + b"\x00\x00\x00\x20kk"), "ends inside"),
        (line_from_blob("ssh-ed25519", ED_BLOB_PREFIX), "ends before"),
        (rsa_line(1024), "at least 2048"),
        (rsa_line(16400), "at most 16384"),
        (
            line_from_blob("ssh-rsa", ssh_string(b"ssh-rsa") + mpint(4) + mpint((1 << 2047) | 1)),
            "exponent",
        ),
        (
            line_from_blob("ssh-rsa", ssh_string(b"ssh-rsa") + mpint(65537) + mpint(1 << 2047)),
            "even",
        ),
        (
            line_from_blob(
                "ecdsa-sha2-nistp256",
                ssh_string(b"ecdsa-sha2-nistp256")
                + ssh_string(b"nistp384")
                + ssh_string(b"\x04" + b"p" * 64),
            ),
            "curve does not match",
        ),
        (
            line_from_blob(
                "ecdsa-sha2-nistp256",
                ssh_string(b"ecdsa-sha2-nistp256")
                + ssh_string(b"nistp256")
                + ssh_string(b"\x02" + b"p" * 32),
            ),
            "not an uncompressed",
        ),
        (ed25519_line("evil\ncomment"), "control characters"),
        (ed25519_line("x" * 300), "comment is longer"),
        ("ssh-ed25519 " + "A" * 9000, "longer than"),
    ],
)
def test_bad_keys_are_refused_saying_why(line: str, complaint: str) -> None:
    with pytest.raises(SSHKeyError, match=complaint):
        parse_key(line)


def test_a_regex_lookalike_is_not_a_key() -> None:
    # Looks right to a pattern (type + base64 of the right length), but is not a key.
    fake = base64.b64encode(b"\x00" * 51).decode()
    with pytest.raises(SSHKeyError):
        parse_key(f"ssh-ed25519 {fake} x")


def test_parse_keys_skips_blanks_and_comments_and_names_the_line() -> None:
    a, b = ed25519_line("a"), ed25519_line("b")
    keys = parse_keys(f"\n# mine\n{a}\n\n  {b}  \n")
    assert [k.comment for k in keys] == ["a", "b"]
    with pytest.raises(SSHKeyError, match="line 3: key data is not valid base64"):
        parse_keys(f"{a}\n\nssh-ed25519 !!!! c\n")


def test_parse_keys_refuses_none_and_duplicates() -> None:
    with pytest.raises(SSHKeyError, match="at least one"):
        parse_keys("\n# nothing\n")
    a = ed25519_line("a")
    with pytest.raises(SSHKeyError, match="line 2: the same key is given twice"):
        parse_keys(f"{a}\n{a}")
