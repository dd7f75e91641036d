"""A registry for comparison tests: the bundled one plus the planted BERT (base), its changed checkpoint
(known layer-0 changes: `CHANGES`) and an identical copy under another id, all naming one tokenizer.
Shared by the API, SDK/CLI and viewer tests of comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.contract import BUNDLED_REGISTRY, load_registry
from service.settings import Settings
from workers.models.changed_checkpoint import CheckpointChanges, build_changed_checkpoint
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert

BASE, TARGET, COPY = "tiny-bert-planted", "tiny-bert-changed", "tiny-bert-copy"
SAMPLES = 600
"""Probe samples of the default text probe set in this registry (a scan of seconds)."""
CHANGES = CheckpointChanges(
    changed=tuple(range(30, 42)),
    rescaled=(20, *range(50, 57)),
    dead=tuple(range(70, 76)),
    replant_digits=True,
)
"""The target's layer-0 changes: 12 changed, 8 rescaled (the planted "play" neuron 20 among them), 6 dead,
and the digit neuron re-planted onto another token."""


def write_comparison_registry(folder: Path, samples: int = SAMPLES) -> Path:
    """Build the three checkpoints under ``folder`` and write the registry naming them (the default text
    probe set cut to ``samples``); its path, for NEURONLENS_REGISTRY_PATH."""
    minilm = load_registry().model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), folder / "base")
    target = build_changed_checkpoint(base, TARGET, folder / "target", CHANGES)
    copy = base.model_copy(update={"id": COPY})
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (default,) = [d for d in registry["datasets"] if d["id"] == minilm.datasets[0]]
    default["n_samples"] = samples
    for spec in (base, target, copy):
        registry["models"].append(
            spec.model_copy(update={"tokenizer": "minilm-wordpiece"}).model_dump(mode="json")
        )
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path


def use_comparison_registry(monkeypatch: pytest.MonkeyPatch, registry: Path, settings: Settings) -> Settings:
    """Point this process's workers (run in the test) at ``registry`` and the test's store and Redis, and
    return the API's settings with that registry."""
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_REDIS_URL": settings.redis_url or "",
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return settings.model_copy(update={"registry_path": registry})
