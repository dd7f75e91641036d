"""What the tests of dictionary latents share: a registry with dictionaries attached to a model (its
default probe set cut short), the API served over real HTTP against it with the in-process workers'
environment set, and posting a request then working the queues."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract import BUNDLED_REGISTRY, JobStatus, load_registry
from service.http.app import create_app
from service.settings import Settings
from tests.service.comparisons_helpers import set_worker_env
from tests.service.helpers import run_workers, serve


def dictionary_entry(
    dictionary_id: str,
    layers: dict[int, Any],
    latents: int,
    revision: str,
    hook: str = "mlp_act",
    **extra: Any,
) -> dict[str, Any]:
    """A registry `dictionaries` entry: an SAE (unless ``extra`` says otherwise) with one folder per layer.
    The scan key holds the revision, not the files' digest: give each module's files their own."""
    return {
        "id": dictionary_id,
        "kind": "sae",
        "hook": hook,
        "latents": latents,
        "layers": [{"layer": layer, "path": str(path)} for layer, path in layers.items()],
        "revision": revision,
        **extra,
    }


def registry_with_dictionaries(
    folder: Path, model: str, dictionaries: list[dict[str, Any]], samples: int
) -> Path:
    """The bundled registry with ``dictionaries`` attached to ``model`` and its default probe set cut to
    ``samples``; the file's path."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    default = load_registry().model(model).datasets[0]
    for dataset in registry["datasets"]:
        if dataset["id"] == default:
            dataset["n_samples"] = samples
    for spec in registry["models"]:
        if spec["id"] == model:
            spec["dictionaries"] = dictionaries
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path


@pytest.fixture()
def latents_api(
    registry_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Settings]]:
    """An HTTP client of the API serving the module's ``registry_file`` fixture, the workers' environment
    set to the same; the API's settings (a fixture of tests/service/conftest.py)."""
    set_worker_env(monkeypatch, registry_file, settings)
    api_settings = settings.model_copy(update={"registry_path": registry_file})
    with serve(create_app(api_settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http, api_settings


def post_and_work(
    http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]
) -> JobStatus:
    """Post an explanation request (202), work the queues until empty, and read the job (its reports on one
    page)."""
    answer = http.post("/v1/explanations", json=body)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    return JobStatus.model_validate(http.get(answer.headers["Location"], params={"limit": 1000}).json())
