"""What the comparison tests share: a registry listing the planted BERT, its changed checkpoint (known
layer-0 changes), an identical copy, a model whose weights are not there, and optionally real fine-tunes;
the environment of the API and in-process workers (and of the loopback LLM peer); posting a comparison and
working the queues. Used by the API, SDK/CLI and viewer tests of comparisons and by bench_compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract import BUNDLED_REGISTRY, ModelSpec, load_registry
from service.contract.comparisons import ComparisonStatus
from service.settings import Settings
from tests.service.helpers import run_workers
from workers.models.changed_checkpoint import CheckpointChanges, build_changed_checkpoint
from workers.models.finetuned_checkpoint import FineTuning, build_finetuned_checkpoint, fine_tuning_texts
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert

SAMPLES = 600
"""Samples of the probe set scanned (a scan of both layers takes seconds)."""
CHANGES = CheckpointChanges(
    changed=tuple(range(30, 42)),
    rescaled=(20, *range(50, 57)),
    dead=tuple(range(70, 76)),
    replant_digits=True,
)
BASE, TARGET, COPY = "tiny-bert-planted", "tiny-bert-changed", "tiny-bert-copy"
MISSING = "tiny-bert-missing"
"""A registry model like the base whose weights folder does not exist: its scan fails."""


def comparison_registry(
    folder: Path, tunings: dict[str, FineTuning] | None = None, samples: int = SAMPLES
) -> Path:
    """The bundled registry (minilm's default probe set cut to ``samples``) plus the planted BERT, its changed
    checkpoint, an identical copy, MISSING and a fine-tune per entry of ``tunings``, all naming one
    tokenizer; its path."""
    minilm = load_registry().model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), folder / "base")
    target = build_changed_checkpoint(base, TARGET, folder / "target", CHANGES)
    copy = base.model_copy(update={"id": COPY})
    missing = base.model_copy(
        update={"id": MISSING, "source": base.source.model_copy(update={"path": str(folder / "none")})}
    )
    specs: list[ModelSpec] = [base, target, copy, missing]
    texts = fine_tuning_texts(96) if tunings else []
    for name, tuning in (tunings or {}).items():
        specs.append(build_finetuned_checkpoint(base, name, folder / name, texts, tuning)[0])
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (default,) = [d for d in registry["datasets"] if d["id"] == minilm.datasets[0]]
    default["n_samples"] = samples
    for spec in specs:
        registry["models"].append(
            spec.model_copy(update={"tokenizer": "minilm-wordpiece"}).model_dump(mode="json")
        )
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path


def set_worker_env(monkeypatch: pytest.MonkeyPatch, registry_file: Path, settings: Settings) -> None:
    """The environment the in-process workers build their runtime from."""
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry_file),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_REDIS_URL": settings.redis_url or "",
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def use_comparison_registry(monkeypatch: pytest.MonkeyPatch, registry: Path, settings: Settings) -> Settings:
    """The in-process workers' environment (set_worker_env) and the API's settings, with ``registry``."""
    set_worker_env(monkeypatch, registry, settings)
    return settings.model_copy(update={"registry_path": registry})


def set_peer_env(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """The `openai` backends pointed at the loopback LLM peer, one call at a time (a fixed call order)."""
    for name, value in {
        "NEURONLENS_LLM_API_KEY": "test-key",
        "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
        "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
        "NEURONLENS_LLM_CONCURRENCY": "1",
        "NEURONLENS_LLM_BASE_URL": base_url,
    }.items():
        monkeypatch.setenv(name, value)


def post_and_run(
    http: httpx.Client, url: str, conn: redis.Redis, settings: Settings, body: dict[str, Any]
) -> ComparisonStatus:
    """Post a comparison (202), work the queues until they are empty, and read its status (every neuron
    on one page)."""
    answer = http.post(f"{url}/v1/comparisons", json=body)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    return ComparisonStatus.model_validate(
        http.get(url + answer.headers["Location"], params={"limit": 1000}).json()
    )
