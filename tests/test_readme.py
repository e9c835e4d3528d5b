"""The README agrees with the code: the configuration table, the quick start, the commands."""

from __future__ import annotations

import re
from pathlib import Path

from owaction.cli import build_parser
from owaction.config import VARIABLES, readme_with_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_configuration_table_matches_the_settings():
    assert readme_with_table(README) == README, (
        "the README's configuration table is stale: run `python -m owaction.config README.md`"
    )
    for var in VARIABLES:
        assert f"| `{var.env}` |" in README


def test_quick_start_is_exactly_two_commands_and_both_exist():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^    (make \w+)", quick, re.M)
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "bench", "soak", "proto", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_cli_subcommand_is_documented():
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name in subcommands:
        assert f"`owaction {name}" in README, name
