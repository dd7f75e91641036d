"""Build `neuronlens-client` from the repository's sources, without the server.

The wheel holds `neuronlens/` (the SDK, repository root), `neuronlens/cli/` (the client commands: the
wheel's `neuronlens` command, pyproject.toml's script) and, as `neuronlens/_contract/`, a copy of the
service's contract (service/contract/: pure pydantic and stdlib; its summary rows are the SDK's tables) with
its `service.contract` imports pointed at the copy, less the server-only object store. The repository's
`neuronlens/_contract.py`, which re-exports the server's classes, is left out. Build from a clone (pip
builds the project in place).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "neuronlens"
CONTRACT = REPO / "service" / "contract"
VENDORED = "neuronlens._contract"
SERVER_ONLY = {"objects.py"}
"""Contract modules the SDK leaves out: the object store needs fsspec, which the SDK does not install."""


def contract_sources() -> dict[str, str]:
    """File name -> text of the contract, imports rewritten to the vendored package."""
    paths = [path for path in sorted(CONTRACT.glob("*.py")) if path.name not in SERVER_ONLY]
    files = {path.name: path.read_text() for path in paths}
    return {name: re.sub(r"\bservice\.contract\b", VENDORED, text) for name, text in files.items()}


class BuildClient(build_py):
    """Copies the SDK and the vendored contract into the build folder."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "neuronlens"
        # pip builds in place (clients/python/build): a previous build's files must not linger
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for source in sorted([*SDK.glob("*.py"), *SDK.glob("cli/*.py")]):
            relative = source.relative_to(SDK)
            if relative != Path("_contract.py"):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(source), str(target / relative))
        contract = target / "_contract"
        contract.mkdir()
        for name, text in contract_sources().items():
            (contract / name).write_text(text)
        (target / "py.typed").write_text("")


class ClientDistribution(Distribution):
    """Has modules although it declares no package folders (BuildClient places them)."""

    def has_pure_modules(self) -> bool:
        return True


setup(packages=[], distclass=ClientDistribution, cmdclass={"build_py": BuildClient})
