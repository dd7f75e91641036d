"""Shared by tests/deploy: the repository root, Dockerfile stages, settings that deploy/ may name early."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_stage(target: str) -> str:
    """The text of the Dockerfile stage ``FROM … AS target`` (without its FROM keyword)."""
    text = (ROOT / "Dockerfile").read_text()
    for stage in re.split(r"^FROM ", text, flags=re.MULTILINE):
        if re.match(rf"\S+ AS {target}\b", stage):
            return stage
    raise AssertionError(f"no stage {target!r} in the Dockerfile")


def clean_env() -> dict[str, str]:
    """This environment without what would let a venv import the checkout (PYTHONPATH)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def copy_build_context(stage: str, context: Path) -> None:
    """Copy what the stage's ``COPY src… dest`` lines copy (sources relative to the repository root)."""
    for line in stage.splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                target = context / source
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(ROOT / source, target)


def pip_installs(stage: str) -> list[list[str]]:
    """The stage's ``RUN pip install …`` lines as argument lists, minus the unreachable torch index.

    Test machines reach no torch index but the default one, which serves them the CPU build."""
    installs = []
    for line in stage.replace("\\\n", " ").splitlines():
        if line.startswith("RUN pip install"):
            args = shlex.split(line.removeprefix("RUN pip install"))
            if "--index-url" in args:
                at = args.index("--index-url")
                assert args[at + 1] == "${TORCH_INDEX_URL}", line
                del args[at : at + 2]
            installs.append([arg for arg in args if arg != "--no-cache-dir"])
    return installs


def install_image_stage(target: str, workdir: Path) -> tuple[Path, list[list[str]]]:
    """Do a Dockerfile stage's Python install for real, without a container engine: its COPY lines fill a
    build context, and the base stage's and its own ``pip install`` lines run there in a new venv.

    Returns the venv's python and the install lines that ran. ``--no-compile`` is the one addition: the
    images never write bytecode either (PYTHONDONTWRITEBYTECODE), and compiling torch's files would double
    the test's time."""
    stage = dockerfile_stage(target)
    context = workdir / "context"
    context.mkdir()
    copy_build_context(stage, context)
    installs = pip_installs(dockerfile_stage("base")) + pip_installs(stage)
    venv = workdir / "venv"
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    for args in installs:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", *args],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=360,  # three installs inside the tests' own limits
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return python, installs
