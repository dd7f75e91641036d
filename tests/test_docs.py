"""README.md stays true to the code: its settings table, its make targets and its console scripts."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# read by the client commands and the SDK, not service settings
CLIENT_ONLY_VARIABLES = {"NEURONLENS_API_URL", "NEURONLENS_API_KEY"}


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `(NEURONLENS_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    fields = {f"NEURONLENS_{name.upper()}" for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from the README's configuration table"
    assert documented - fields == set(), "the README documents settings that do not exist"


def test_every_variable_named_in_the_readme_exists() -> None:
    named = set(re.findall(r"NEURONLENS_[A-Z0-9_]+", README)) - CLIENT_ONLY_VARIABLES
    fields = {f"NEURONLENS_{name.upper()}" for name in Settings.model_fields}
    assert named - fields == set()


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    for target in set(re.findall(r"make ([a-z]+)", README)):
        assert target in targets, f"`make {target}` is in the README but not in the Makefile"


def test_commands_in_the_readme_exist() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for script in set(re.findall(r"\b(neuronlens(?:-[a-z]+)?) [a-z-]", README)):
        assert script in scripts, f"{script} is in the README but not a console script"
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    # `from neuronlens import …` is the SDK, not a command
    for command in set(re.findall(r"(?<!from )neuronlens (up|explain|demo|[a-z]+)\b", README)):
        assert command in subcommands, f"`neuronlens {command}` is in the README but not in the CLI"


def test_images_in_the_readme_exist() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images, "the README shows no image (the viewer section has a screenshot)"
    for image in images:
        assert (ROOT / image).is_file(), f"{image} is in the README but not in the repository"


def readme_cli_commands() -> list[list[str]]:
    """Arguments of every `.venv/bin/neuronlens …` line in the README's shell blocks (continuations joined,
    comments and leading variable assignments dropped)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            _, found, rest = line.partition(".venv/bin/neuronlens ")
            if found:
                commands.append(shlex.split(rest, comments=True))
    return commands


def test_cli_commands_in_the_readme_parse() -> None:
    """Every `neuronlens` command line the README shows is accepted by the CLI as written."""
    commands = readme_cli_commands()
    assert {args[0] for args in commands} >= {"up", "explain", "models", "demo"}
    parser = build_parser()
    for args in commands:
        try:
            parser.parse_args(args)
        except SystemExit:
            raise AssertionError(f"README command does not parse: neuronlens {shlex.join(args)}") from None
