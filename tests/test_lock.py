"""requirements.lock pins every install: it agrees with pyproject.toml, and every install path uses it.

`make lock` writes the lock (uv pip compile, every extra, universal markers); these tests fail when a
dependency is added, removed or re-ranged in pyproject.toml without re-locking, and when an install path
(the Makefile, the Dockerfile) stops installing through the lock.
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# uv's annotation of a package that pyproject.toml asks for by name (directly, any extra)
DIRECT = "neuronlens (pyproject.toml)"


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts.extend(extra)
    return [Requirement(text) for text in texts]


def locked_pins(text: str) -> dict[str, list[tuple[Version, Marker | None]]]:
    """Each locked package's versions, with the marker under which each one applies."""
    pins: dict[str, list[tuple[Version, Marker | None]]] = defaultdict(list)
    for line in text.splitlines():
        if not line or line[0] in "# ":
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"the lock must pin exact versions: {line!r}"
        pins[canonicalize_name(requirement.name)].append((Version(specifier.version), requirement.marker))
    return pins


def directly_required(text: str) -> set[str]:
    """Packages the lock says pyproject.toml asks for (uv's `# via` annotations)."""
    named, current = set(), ""
    for line in text.splitlines():
        if line and line[0] not in "# ":
            current = canonicalize_name(Requirement(line).name)
        elif DIRECT in line:
            named.add(current)
    return named


def pinned_version(pins: list[tuple[Version, Marker | None]]) -> Version | None:
    """The version the lock installs on this interpreter (the project's Python)."""
    for version, marker in pins:
        if marker is None or marker.evaluate():
            return version
    return None


def test_every_project_requirement_is_locked_within_its_range() -> None:
    pins = locked_pins(LOCK.read_text())
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml, not in requirements.lock: run `make lock`"
        version = pinned_version(pins[name])
        assert version is not None, f"requirements.lock has no {name} for this Python: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version} outside pyproject.toml's {requirement}: `make lock`"
        )


def test_the_lock_holds_no_direct_requirement_that_pyproject_dropped() -> None:
    asked = {canonicalize_name(requirement.name) for requirement in project_requirements()}
    stale = directly_required(LOCK.read_text()) - asked
    assert not stale, f"requirements.lock still names {sorted(stale)} for pyproject.toml: run `make lock`"


def test_the_lock_pins_the_torch_the_installs_ask_for() -> None:
    pins = locked_pins(LOCK.read_text())
    makefile = (ROOT / "Makefile").read_text()
    (torch_pin,) = re.findall(r"^TORCH_PIN := torch==(\S+)$", makefile, flags=re.MULTILINE)
    assert pinned_version(pins["torch"]) == Version(torch_pin)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert set(re.findall(r"torch==(\S+)", dockerfile)) == {torch_pin}


def test_every_install_goes_through_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if re.search(r"\$\(BIN\)/pip install", line)]
    assert installs, "the Makefile installs nothing"
    for line in installs:
        if "$(PIP_PIN)" not in line:
            assert "-c $(LOCK)" in line, f"a Makefile install bypasses the lock: {line.strip()}"
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert len(runs) >= 5, "each image stage installs its packages"
    for line in runs:
        if "pip==" not in line:
            assert "-c requirements.lock" in line, f"a Dockerfile install bypasses the lock: {line}"
    assert "COPY pyproject.toml README.md requirements.lock ./" in dockerfile
