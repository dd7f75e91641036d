"""The worker-cpu image's Python install, done for real in a fresh venv, without a container engine.

The Dockerfile's `worker-cpu` stage is read: its COPY lines pick the files copied into a temporary build
context, and its `pip install` lines are run there in a new virtual environment. The one change is the
torch index: PyTorch's CPU wheel index is not reachable from test machines, so torch==2.13.0 comes from
the default index configuration, which on them serves the same CPU build. The worker's modules then
import and its console script runs, and nothing pulled a CUDA build of torch.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, dockerfile_stage


def _copy_context(stage: str, context: Path) -> None:
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


def _pip_installs(stage: str) -> list[list[str]]:
    """The stage's ``RUN pip install …`` lines as argument lists, minus the unreachable torch index."""
    installs = []
    for line in stage.splitlines():
        if line.startswith("RUN pip install"):
            args = shlex.split(line.removeprefix("RUN pip install"))
            if "--index-url" in args:
                at = args.index("--index-url")
                assert args[at + 1] == "${TORCH_INDEX_URL}", line
                del args[at : at + 2]
            installs.append([arg for arg in args if arg != "--no-cache-dir"])
    return installs


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_worker_cpu_install_imports_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    stage = dockerfile_stage("worker-cpu")
    context = tmp_path / "context"
    context.mkdir()
    _copy_context(stage, context)
    installs = _pip_installs(stage)
    assert [args for args in installs if "torch==2.13.0" in args] and installs[-1] == ["./[worker]"]

    venv = tmp_path / "venv"
    # The venv must see only what it installed: not this checkout through PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    for args in installs:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=1000,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    probe = (
        "import torch, workers.tasks, workers.worker, workers.pipeline, service.settings; "
        "print(torch.__version__, torch.version.cuda, workers.tasks.__file__, service.settings.__file__)"
    )
    imported = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    version, cuda, *modules = imported.stdout.split()
    assert version.startswith("2.13.0") and cuda == "None", "the CPU image must carry the CPU build of torch"
    assert all(Path(module).is_relative_to(venv) for module in modules), f"imported from outside: {modules}"
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert not re.findall(r"^nvidia-", listed, flags=re.MULTILINE), "a dependency pulled CUDA packages"
    helped = subprocess.run(
        [str(venv / "bin" / "neuronlens-worker"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "--check" in helped.stdout
