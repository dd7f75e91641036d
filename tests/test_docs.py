"""README.md and the docs/ pages stay true to the code and to the repository: the settings table, the
commands they show, the make targets they name, their images, the module map, the default probe sets, and
every reference to another document (a reference to a file that is not in the repository fails here).
`make test` also builds the pages with `mkdocs build --strict`, which checks links between pages."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import tomllib
import unicodedata
from argparse import ArgumentParser
from functools import cache
from pathlib import Path

import pytest
from pydantic import AliasChoices

from service.commands.main import build_parser
from service.settings import Settings
from workers.process.worker import _parser as worker_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.glob("*.md"))
CONFIGURATION = DOCS / "configuration.md"
ARCHITECTURE = DOCS / "architecture.md"
# read by the client commands and the SDK, not service settings
CLIENT_ONLY_VARIABLES = {"NEURONLENS_API_URL", "NEURONLENS_API_KEY"}
PACKAGES = ("service", "workers", "neuronlens")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def all_text() -> str:
    """README and every docs page, one string."""
    return "\n".join(read(path) for path in [README, *PAGES])


def setting_variables() -> set[str]:
    return {f"NEURONLENS_{name.upper()}" for name in Settings.model_fields}


def deprecated_variables() -> set[str]:
    """Former names a setting still reads (its other ``NEURONLENS_`` aliases): docs may name them."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        names |= {c for c in choices if isinstance(c, str) and c.startswith("NEURONLENS_")}
        names.discard(f"NEURONLENS_{name.upper()}")
    return names


def test_docs_pages_exist() -> None:
    names = {path.name for path in PAGES}
    assert {"index.md", "configuration.md", "method.md", "architecture.md", "api.md", "cli.md"} <= names


def test_every_setting_is_documented() -> None:
    """docs/configuration.md's table lists every setting, and nothing else."""
    table = read(CONFIGURATION)
    documented = re.findall(r"^\| `(NEURONLENS_[A-Z0-9_]+)` \|", table, flags=re.MULTILINE)
    assert len(documented) == len(set(documented)), "a setting is listed twice in docs/configuration.md"
    assert setting_variables() - set(documented) == set(), "settings missing from docs/configuration.md"
    assert set(documented) - setting_variables() == set(), (
        "docs/configuration.md lists settings that do not exist"
    )


def test_every_variable_named_in_the_docs_exists() -> None:
    named = set(re.findall(r"NEURONLENS_[A-Z0-9_]+", all_text())) - CLIENT_ONLY_VARIABLES
    assert named - setting_variables() - deprecated_variables() == set()


def test_make_targets_in_the_docs_exist() -> None:
    makefile = read(ROOT / "Makefile")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    shown = re.findall(r"`make ([a-z][a-z-]*)", all_text())  # `make x` in prose
    shown += [
        match.group(1)
        for path in [README, *PAGES]
        for block in shell_blocks(path)
        for match in re.finditer(r"^make ([a-z][a-z-]*)", block, flags=re.MULTILINE)
    ]
    assert {"demo", "test", "docs"} <= set(shown)
    for target in set(shown):
        assert target in targets, f"`make {target}` is in the docs but not in the Makefile"


def test_commands_in_the_docs_exist() -> None:
    text = all_text()
    scripts = tomllib.loads(read(ROOT / "pyproject.toml"))["project"]["scripts"]
    for script in set(re.findall(r"\b(neuronlens(?:-[a-z]+)?) [a-z-]", text)):
        assert script in scripts, f"{script} is in the docs but not a console script"
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    # `from neuronlens import …` is the SDK, not a command
    for command in set(re.findall(r"(?<!from )(?<!-)\bneuronlens (up|explain|demo|[a-z]+)\b", text)):
        assert command in subcommands, f"`neuronlens {command}` is in the docs but not in the CLI"


def images(path: Path) -> list[Path]:
    """Files the markdown images of `path` show, resolved against its folder."""
    return [path.parent / target for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", read(path))]


def test_images_in_the_docs_exist() -> None:
    assert images(README), "the README shows no image (the viewer screenshot)"
    assert any(images(page) for page in PAGES), "no docs page shows an image (the viewer has a screenshot)"
    for path in [README, *PAGES]:
        for image in images(path):
            assert image.is_file(), f"{path.name} shows {image}, which is not in the repository"


SHELL_OPERATORS = {"&", "&&", ";", "|", "||", ">", ">>"}


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", read(path), flags=re.DOTALL)


def cli_commands(prefixes: tuple[str, ...]) -> list[tuple[Path, list[str]]]:
    """(page, arguments) of every command line starting with one of `prefixes` in the shell blocks of the
    README and the docs pages (continuations joined, comments dropped): anywhere in the line for the
    `.venv/bin/` forms, at the start of the line for a bare `neuronlens` (as `neuronlens keys …` is shown)."""
    commands = []
    for path in [README, *PAGES]:
        for block in shell_blocks(path):
            for line in block.replace("\\\n", " ").splitlines():
                for prefix in prefixes:
                    bare = not prefix.startswith(".venv/")
                    if bare and not line.startswith(prefix):
                        continue
                    _, found, rest = line.partition(prefix)
                    if found:
                        args = shlex.split(rest, comments=True)
                        # a shell operator ends the command (`… --name scan-$k & done`)
                        ends = [i for i, arg in enumerate(args) if arg in SHELL_OPERATORS]
                        commands.append((path, args[: ends[0]] if ends else args))
    return commands


def assert_parse(parser: ArgumentParser, commands: list[tuple[Path, list[str]]], program: str) -> None:
    for path, args in commands:
        try:
            parser.parse_args(args)
        except SystemExit:
            raise AssertionError(
                f"{path.name}: command does not parse: {program} {shlex.join(args)}"
            ) from None


def test_cli_commands_in_the_docs_parse() -> None:
    """Every `neuronlens` command line the README and the docs show is accepted by the CLI as written."""
    commands = cli_commands((".venv/bin/neuronlens ", "neuronlens "))
    assert {args[0] for _, args in commands} >= {"up", "explain", "export", "models", "demo", "keys"}
    assert {path for path, _ in commands} >= {README, DOCS / "cli.md"}
    assert_parse(build_parser(), commands, "neuronlens")


def test_worker_commands_in_the_docs_parse() -> None:
    commands = cli_commands((".venv/bin/neuronlens-worker ",))
    assert commands, "the docs show no neuronlens-worker command"
    assert_parse(worker_parser(), commands, "neuronlens-worker")


def test_default_probe_sets_in_the_docs_are_the_registry_defaults() -> None:
    """docs/method.md names the default probe set of text and of vision-language models: each is the first
    (default) probe set of every registry model of that modality."""
    registry = json.loads(read(ROOT / "service" / "contract" / "registry.json"))
    named = re.search(
        r"Text models default to `([\w.-]+)`, vision-language models to `([\w.-]+)`", read(DOCS / "method.md")
    )
    assert named is not None, "docs/method.md no longer says which probe sets are the defaults"
    for model in registry["models"]:
        expected = named.group(1) if model["modality"] == "text" else named.group(2)
        assert model["datasets"][0] == expected, f"{model['id']} defaults to {model['datasets'][0]}"


# ---------------------------------------------------------------------------------------------- module map


def documented_module(path: Path) -> bool:
    """A module the map must list: every .py file except an `__init__.py` holding at most a docstring."""
    if path.name != "__init__.py":
        return True
    body = ast.parse(read(path)).body
    return not (len(body) == 0 or (len(body) == 1 and isinstance(body[0], ast.Expr)))


def test_module_map_lists_every_module_and_only_modules_that_exist() -> None:
    module = re.compile(r"`((?:" + "|".join(PACKAGES) + r")/[\w/]+\.py)`")
    listed = set(module.findall(read(ARCHITECTURE)))
    tree = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts and documented_module(path)
    }
    assert tree - listed == set(), "modules missing from the module map in docs/architecture.md"
    assert listed - tree == set(), "the module map in docs/architecture.md lists modules that do not exist"


def test_the_module_map_is_the_tree() -> None:
    """Each module stands in the table of its own folder: a heading naming the folder (`service/jobs/`), then
    the folder's modules, so the map reads as the tree."""
    text = read(ARCHITECTURE)
    section = text[text.index("## Module map") :]
    folder = None
    misplaced = []
    for line in section.splitlines():
        heading = re.match(r"^#{3,4} .*\(`([\w/]+)/`\)$", line)
        if heading:
            folder = heading.group(1)
        row = re.match(r"^\| `((?:" + "|".join(PACKAGES) + r")/[\w/]+\.py)` \|", line)
        if row and row.group(1).rsplit("/", 1)[0] != folder:
            misplaced.append(f"{row.group(1)} under {folder}/")
    assert misplaced == [], "modules listed outside their folder's table in docs/architecture.md"


# ---------------------------------------------------------------------------------------------- references

DANGLING_WORDS = ("DES" + "IGN", "../" + "shared")
"""Documents that are not in the repository (built from parts so this file does not name them)."""
SECTION_SIGN = re.compile(r"(?<!RFC \d{4} )§\s*\d")
"""A numbered section of another document; only RFC sections (`RFC 9110 §13.1.2`) are citable."""
MARKDOWN_PATH = re.compile(r"(?<![\w/.:~@-])((?:\.\.?/)?(?:[\w.-]+/)*[\w-][\w.-]*\.md)(#[\w-]+)?")
"""A relative path to a markdown file, with an optional anchor; URLs (`…/x.md`) are not matched."""
LOCAL_ANCHOR = re.compile(r"\]\((#[\w-]+)\)")
"""An in-page markdown link."""
TEXT_SUFFIXES = {".py", ".md", ".json", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".html"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".gitignore", ".dockerignore", "run"}


def repository_files() -> list[Path]:
    """The repository's files, tracked or new (not ignored), from git; the package folders without it."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout.decode()
        paths = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [path for path in ROOT.rglob("*") if ".venv" not in path.parts and ".git" not in path.parts]
    return [path for path in paths if path.is_file()]


def text_files() -> list[Path]:
    """Text files to check: all but this one, whose own examples of dangling references are deliberate."""
    this = Path(__file__).resolve()
    return [
        path
        for path in repository_files()
        if (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES) and path.resolve() != this
    ]


def slugify(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (MkDocs' default) gives a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"[`*]", "", text)  # code spans and emphasis: their text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@cache
def anchors(path: Path) -> frozenset[str]:
    """The heading anchors of a markdown file (headings inside fenced code are comments, not headings)."""
    found = set()
    fenced = False
    for line in read(path).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+?)\s*#*$", line)):
            found.add(slugify(heading.group(1)))
    return frozenset(found)


def dangling_references(path: Path, text: str) -> list[str]:
    """What in `text` (the file `path`) refers to a document, section or anchor that does not exist."""
    problems = [f"names {word!r}" for word in DANGLING_WORDS if word in text]
    problems += [f"cites a section: {m.group(0)!r}" for m in SECTION_SIGN.finditer(text)]
    for match in MARKDOWN_PATH.finditer(text):
        name, anchor = match.group(1), match.group(2)
        bases = [path.parent, ROOT, *([DOCS] if path.name == "mkdocs.yml" else [])]  # nav: under docs_dir
        candidates = [base / name for base in bases]
        target = next((c.resolve() for c in candidates if c.is_file()), None)
        if target is None:
            problems.append(f"refers to {name}, which is not in the repository")
        elif anchor and anchor[1:] not in anchors(target):
            problems.append(f"refers to {name}{anchor}, but {name} has no such heading")
    if path.suffix == ".md":
        for match in LOCAL_ANCHOR.finditer(text):
            if match.group(1)[1:] not in anchors(path):
                problems.append(f"links to {match.group(1)}, which is not a heading of this page")
    return problems


def test_reference_check_finds_dangling_references(tmp_path: Path) -> None:
    """The check below is not vacuous: each kind of dangling reference is caught, and good ones pass."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Neuron types\n", encoding="utf-8")
    assert dangling_references(page, "see page.md#neuron-types and [t](#title), docs/method.md#scan") == []
    assert dangling_references(page, "https://example.org/missing.md#x, RFC 9110 §9.3.2") == []
    bad = [
        "see " + DANGLING_WORDS[0] + " §4.4",
        "in " + DANGLING_WORDS[1] + "/notes",
        "the method (§4.4)",
        "docs/missing.md",
        "page.md#no-such-heading",
        "[x](#nowhere)",
        "docs/method.md#no-such-heading",
    ]
    for text in bad:
        assert dangling_references(page, text), f"not caught: {text!r}"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Tables (NDJSON, CSV, Parquet)", "tables-ndjson-csv-parquet"),
        ("The `openai` backends", "the-openai-backends"),
        ("`neuronlens export`", "neuronlens-export"),
        ("API keys, rate limits and quotas", "api-keys-rate-limits-and-quotas"),
    ],
)
def test_slugs_are_those_mkdocs_writes(heading: str, slug: str) -> None:
    assert slugify(heading) == slug


def test_no_file_refers_to_a_document_that_is_not_in_the_repository() -> None:
    """Code, tests, pages, deploy files and openapi/openapi.json (its descriptions come from docstrings)."""
    files = text_files()
    assert ROOT / "openapi" / "openapi.json" in files and README in files
    problems = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in files
        for problem in dangling_references(path, read(path))
    ]
    assert problems == []
