"""The CLI reference (docs/cli.md), written from the commands themselves.

    python -m vulcano.lab.clidoc > docs/cli.md

Every command and group of `vulcano` and `vulcano-agent`, with its usage, its help and
every option (its environment variable and default where it has one), so the reference
cannot drift from the code: tests/test_docs.py compares the file with a fresh rendering.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

HEADER = """\
# CLI reference

Written from the commands themselves by `python -m vulcano.lab.clidoc > docs/cli.md`
(tests/test_docs.py fails when it is out of date). Configuration files and every
`VULCANO_*` variable: [configuration.md](configuration.md).
"""


def _walk(
    command: click.Command, path: list[str], ctx: click.Context | None
) -> Iterator[tuple[list[str], click.Command, click.Context]]:
    here = click.Context(command, info_name=path[-1], parent=ctx, **command.context_settings)
    yield path, command, here
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(here)):
            sub = command.get_command(here, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, [*path, name], here)


def _option_row(param: click.Parameter, ctx: click.Context) -> str | None:
    if not isinstance(param, click.Option) or param.hidden:
        return None
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, text = record
    extra = []
    if param.envvar and "env " not in text:
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        extra.append("env " + ", ".join(envvars))
    text = " ".join(text.split())
    if extra:
        text = f"{text} [{'; '.join(extra)}]" if text else f"[{'; '.join(extra)}]"
    cell = text.replace("|", "\\|")
    return f"| `{names}` | {cell} |"


def render(roots: list[tuple[str, click.Command]]) -> str:
    out = [HEADER]
    for program, root in roots:
        out.append(f"\n## `{program}`\n")
        for path, command, ctx in _walk(root, [program], None):
            if len(path) > 1:
                out.append(f"\n### `{' '.join(path)}`\n")
            pieces = command.collect_usage_pieces(ctx)
            out.append(f"```\n{' '.join(path)} {' '.join(pieces)}\n```\n")
            help_text = (command.help or command.short_help or "").strip()
            if help_text:
                out.append(click.unstyle(help_text.split("\f")[0]).strip() + "\n")
            rows = [r for p in command.get_params(ctx) if (r := _option_row(p, ctx))]
            if rows:
                out.append("\n| option | meaning |\n|---|---|")
                out.extend(rows)
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def reference() -> str:
    from agent.cli import main as agent_main
    from container.cli import main as vulcano_main

    return render([("vulcano", vulcano_main), ("vulcano-agent", agent_main)])


if __name__ == "__main__":
    sys.stdout.write(reference())
