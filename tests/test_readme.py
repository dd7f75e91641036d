"""README.md stays true to the code: its settings table, its make targets and its console scripts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLIENT_ONLY_VARIABLES = {"NEURONLENS_API_URL"}  # read by `neuronlens explain`, not a service setting


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
    for command in set(re.findall(r"neuronlens (up|explain|demo|[a-z]+)\b", README)):
        assert command in subcommands, f"`neuronlens {command}` is in the README but not in the CLI"


def test_images_in_the_readme_exist() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images, "the README shows no image (the viewer section has a screenshot)"
    for image in images:
        assert (ROOT / image).is_file(), f"{image} is in the README but not in the repository"
