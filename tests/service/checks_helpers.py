"""What the pin-check tests share: a registry listing the planted BERT and its changed checkpoint (the
digit neuron 10 of layer 0 re-planted onto "?"), over the first samples of text-probe-v2, and the pin
on that neuron."""

from __future__ import annotations

import json
from pathlib import Path

from service.contract import BUNDLED_REGISTRY, load_registry
from workers.models.changed_checkpoint import DIGIT_NEURON, CheckpointChanges, build_changed_checkpoint
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert

BASE, TARGET, MISSING = "tiny-bert-planted", "tiny-bert-changed", "tiny-bert-missing"
"""The planted BERT, its changed checkpoint, and a model whose weights are not there, as the test registry
names them."""
SAMPLES = 600
"""Samples of text-probe-v2 scanned (a scan of both layers takes seconds)."""
DIGIT_PIN = {
    "layer": 0,
    "neuron": DIGIT_NEURON,
    "type": "text",
    "explanation": "numbers (digit tokens)",
    "min_score": 0.6,
}
"""The pin a CI build relies on: the planted digit neuron, explained as numbers."""


def planted_registry(folder: Path) -> Path:
    """Build the planted BERT and its changed checkpoint in ``folder`` and write a registry (the bundled
    one, text-probe-v2 cut to its first SAMPLES samples, plus both models and MISSING); its path."""
    minilm = load_registry().model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), folder / "base")
    target = build_changed_checkpoint(base, TARGET, folder / "target", CheckpointChanges(replant_digits=True))
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (probe,) = [d for d in registry["datasets"] if d["id"] == "text-probe-v2"]
    probe["n_samples"] = SAMPLES
    missing = base.model_copy(
        update={"id": MISSING, "source": base.source.model_copy(update={"path": str(folder / "none")})}
    )
    for spec in (base, target, missing):
        registry["models"].append(spec.model_dump(mode="json", exclude_none=True))
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path
