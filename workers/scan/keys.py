"""Artifact keys. Only what changes the recorded numbers goes into a key: model and revision, hook,
layer, probe set (id, revision, size), n_top, seed, and the artifact layout version."""

from __future__ import annotations

import hashlib
import re

from service.contract import SCAN_VERSION, DatasetSpec, ModelSpec, canonical_json

TOKENS_VERSION = "1"
"""Layout of the tokenised probe set artifact."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(payload: dict[str, object]) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def _dataset_payload(dataset: DatasetSpec) -> dict[str, object]:
    return {
        "id": dataset.id,
        "revision": dataset.revision,
        "n_samples": dataset.n_samples,
        "path": dataset.path,
    }


def tokens_key(model: ModelSpec, dataset: DatasetSpec) -> str:
    """Key of the tokenised probe set for (model, dataset): shared by every layer and hook."""
    digest = _digest(
        {
            "model": model.id,
            "revision": model.revision,
            "dataset": _dataset_payload(dataset),
            "tokens_version": TOKENS_VERSION,
        }
    )
    return f"tokens/{_UNSAFE.sub('_', model.id)}-{_UNSAFE.sub('_', dataset.id)}-{digest}"


def scan_id(model: ModelSpec, dataset: DatasetSpec, hook: str, layer: int, n_top: int, seed: int) -> str:
    """The scan id of one layer (readable prefix + hash of everything that changes the numbers)."""
    digest = _digest(
        {
            "model": model.id,
            "revision": model.revision,
            "hook": hook,
            "layer": layer,
            "dataset": _dataset_payload(dataset),
            "n_top": n_top,
            "seed": seed,
            "scan_version": SCAN_VERSION,
        }
    )
    return f"{_UNSAFE.sub('_', model.id)}-{_UNSAFE.sub('_', hook)}-L{layer}-{digest}"


def scan_key(scan: str) -> str:
    """Artifact key of a scan id."""
    return f"scans/{scan}"
