"""Every capcache command shown in the README and docs/ parses against the real CLI.

Typos in option names, commands that were renamed, arguments that went missing: the docs fail
here instead of in a user's terminal. (The README's two commands run for real: they are CI.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after the program name) for every capcache invocation in a fenced code block."""
    found = []
    for doc in DOCS:
        blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", doc.read_text(), flags=re.S)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip().lstrip("!")
                words = shlex.split(re.sub(r"<[^>]*>", "x", line)) if line else []
                if words[:1] == ["capcache"]:
                    found.append((f"{doc.name}: {line}", words[1:]))
                elif "cli.py" in words:
                    found.append((f"{doc.name}: {line}", words[words.index("cli.py") + 1:]))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_every_main_command():
    used = {argv[0] for _, argv in COMMANDS}
    assert {"import", "extract", "train", "eval", "compare"} <= used
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, argv):
    group = typer.main.get_command(app)
    name, *rest = argv
    with click.Context(group) as parent:
        command = group.get_command(parent, name)
        assert command is not None, f"{where}: no command {name!r}"
        if isinstance(command, click.Group):
            sub, *rest = rest
            command = command.get_command(parent, sub)
            assert command is not None, f"{where}: no command {name} {sub!r}"
        try:
            command.make_context(name, list(rest), parent=parent)
        except click.UsageError as e:
            pytest.fail(f"{where}: {e.format_message()}")
