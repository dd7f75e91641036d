"""The worker-cpu image's Python install, done for real in a fresh venv, without a container engine.

The Dockerfile's `worker-cpu` stage is read: its COPY lines pick the files copied into a temporary build
context, and its `pip install` lines are run there in a new virtual environment. The one change is the
torch index: PyTorch's CPU wheel index is not reachable from test machines, so torch==2.13.0 comes from
the default index configuration, which on them serves the same CPU build. The worker's modules then
import and its console script runs, and nothing pulled a CUDA build of torch.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import clean_env, install_image_stage


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_worker_cpu_install_imports_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    python, installs = install_image_stage("worker-cpu", tmp_path)
    assert [args for args in installs if "torch==2.13.0" in args] and installs[-1][-1] == "./[worker]"
    assert all("requirements.lock" in args for args in installs[1:]), "every install goes through the lock"
    venv = python.parents[1]
    env = clean_env()

    probe = (
        "import torch, workers.process.tasks, workers.process.worker, workers.process.scan_job, "
        "workers.process.explain_job, "
        "service.settings; "
        "print(torch.__version__, torch.version.cuda, workers.process.tasks.__file__, "
        "service.settings.__file__)"
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
