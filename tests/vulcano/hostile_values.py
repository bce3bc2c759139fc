"""Hostile text for the user-data campaigns: what could break out of a quoted value.

Newlines and the other line ends YAML, TOML and systemd know, quotes, comments, YAML
tags, anchors and document markers, TOML tables, unit-file sections and shell syntax;
lone surrogates (no UTF-8 form), NULs and BOMs; each alone, after a valid value (so
the value passes a prefix check) and in random text.
"""

from __future__ import annotations

from hypothesis import strategies as st

PIECES = [
    "\n",
    "\r",
    "\r\n",
    "\x85",
    "\u2028",
    "\u2029",
    "\x0b",
    "\x0c",
    "\x00",
    "\ufeff",
    "\ud800",  # a lone surrogate: str holds it, UTF-8 cannot
    "\t",
    " ",
    "#",
    " #",
    ": ",
    "- ",
    "'",
    '"',
    "\\",
    '\\"',
    "`",
    "$(reboot)",
    "${HOME}",
    "%",
    "%n",
    "!!python/object/apply:os.system ['reboot']",
    "!<tag:yaml.org,2002:str>",
    "&a",
    "*a",
    "<<: *a",
    "---",
    "...",
    "|",
    ">-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "=",
    "?",
    "@",
    "\nruncmd: [reboot]",
    '", "evil": "',
    "\n[evil]\nx = 1\n",
    '"\nevil = true\n"',
    "\nExecStartPre=/bin/sh -c reboot\n",
    "[Service]",
    "\ndiscovery: http://evil/\n",
    "http://",
    "https://",
    "a",
    "1",
    "é",
    "\U0001f600",
]

fragments = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=0, max_size=10
).map("".join)


def hostile(valid: str) -> st.SearchStrategy[str]:
    """Text that breaks out, alone or after/around ``valid`` (a value the field takes)."""
    # the valid value with a tail first: hypothesis favours early branches, and those
    # are the inputs that pass the checks and reach the document
    return st.one_of(
        fragments.map(lambda tail: valid + tail),
        fragments,
        st.tuples(fragments, fragments).map(lambda ht: ht[0] + valid + ht[1]),
        st.text(max_size=40),
    )
