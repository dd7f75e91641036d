"""The API image starts: the package installed WITHOUT extras (the Dockerfile's `api` stage install lines,
run for real through the lock) into a fresh venv serves /healthz and an exemplar-image 404 under
`uvicorn --factory service.http.app:app_from_env`, with none of the worker stack (torch, numpy, PIL, …),
and its `neuronlens keys` command manages API keys in a real Redis.

SLOW (about a minute with a warm pip cache, a few minutes without): it creates a real venv and installs
the package's core dependencies from the package index into it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import redis

from service.commands.embedded_redis import free_port
from service.contract import ExplanationRequest, load_registry
from tests.deploy.helpers import clean_env, install_image_stage
from tests.service.helpers import store_reports
from workers.process.report_writer import ReportObjects

pytestmark = pytest.mark.timeout(900)

WORKER_ONLY = ("torch", "transformers", "numpy", "safetensors", "PIL", "openai")
"""Distributions the `worker` extra adds: none of them may be importable in the API venv."""


@pytest.fixture(scope="module")
def api_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the api stage's install (the package, no extras, through the lock): its python."""
    python, installs = install_image_stage("api", tmp_path_factory.mktemp("api-image"))
    assert installs[-1][-1] == ".", "the api stage installs the package without extras"
    return python


def _api_env(redis_url: str, artifacts: Path) -> dict[str, str]:
    env = clean_env()
    env.update(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_ARTIFACT_URL=str(artifacts))
    return env


def test_the_api_venv_has_no_worker_stack(api_venv: Path, tmp_path: Path) -> None:
    probe = "import importlib.util as u, service; print(service.__file__); print([m for m in %r if u.find_spec(m)])"  # noqa: E501
    out = subprocess.run(
        [str(api_venv), "-c", probe % (WORKER_ONLY,)],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0].startswith(str(api_venv.parents[1])), "service must come from the venv, not the checkout"
    assert out[1] == "[]"


def test_the_api_venv_creates_and_lists_keys(api_venv: Path, redis_url: str, tmp_path: Path) -> None:
    """Operators run `neuronlens keys create` in the API container (docs/deploy.md): the image's own
    `neuronlens` command (its console script, outside the checkout) writes a key to a real Redis, and
    `keys list` shows it."""
    command = api_venv.parent / "neuronlens"
    env = _api_env(redis_url, tmp_path / "artifacts")

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), "keys", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    made = keys("create", "--name", "team-a", "--scopes", "read,submit")
    assert made.returncode == 0, made.stdout + made.stderr
    assert made.stdout.strip().splitlines()[-1].startswith("nl_"), made.stdout
    listed = keys("list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["scopes"]) for row in rows] == [("team-a", "read,submit")]


@pytest.fixture()
def api_from_env(api_venv: Path, redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        str(api_venv),
        "-m",
        "uvicorn",
        "--factory",
        "service.http.app:app_from_env",
        "--port",
        str(port),
    ]
    log = tmp_path / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=_api_env(redis_url, tmp_path / "artifacts"), stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the API exited at start:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the API did not answer:\n{log.read_text()}"
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_app_factory_serves_health_and_an_exemplar_image_404(api_from_env: str) -> None:
    assert httpx.get(api_from_env + "/healthz", timeout=10).status_code == 200
    image = httpx.get(
        api_from_env + "/v1/neurons/minilm-l6/0/0/exemplars/0.png", params={"variant": "0" * 16}, timeout=10
    )
    assert image.status_code == 404
    assert image.headers["content-type"].startswith("application/problem+json")
    assert "no exemplar image 0.png for minilm-l6 layer 0 neuron 0" in image.json()["detail"]


def test_the_api_venv_exports_parquet_without_numpy(
    api_from_env: str, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    """pyarrow is a core dependency and writes Parquet in the API venv, where numpy is not importable."""
    request = ExplanationRequest(model="minilm-l6", layer=0, neurons=[4, 2])
    revision = load_registry().model("minilm-l6").revision
    store_reports(redis_conn, ReportObjects(str(tmp_path / "artifacts")), request, revision)
    answer = httpx.get(api_from_env + "/v1/neurons/minilm-l6/0", params={"format": "parquet"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert pq.read_table(io.BytesIO(answer.content)).column("neuron").to_pylist() == [2, 4]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
