"""Artifact keys. Only what changes the recorded numbers goes into a key: model and revision, hook,
layer, probe set (id, revision, size), n_top, seed, and the artifact layout version. Scan keys live in the
contract (service/contract/artifact_keys.py), which the API reads too; the tokenised probe set's key is
here."""

from __future__ import annotations

import re

from service.contract import DatasetSpec, ModelSpec
from service.contract.artifact_keys import artifact_digest, scan_dataset_payload, scan_id, scan_key

__all__ = ["TOKENS_VERSION", "model_inputs_key", "scan_id", "scan_key", "tokens_key"]

TOKENS_VERSION = "1"
"""Layout of the tokenised probe set artifact."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def tokens_key(model: ModelSpec, dataset: DatasetSpec) -> str:
    """Key of the tokenised probe set for (model, dataset): shared by every layer and hook."""
    digest = artifact_digest(
        {
            "model": model.id,
            "revision": model.revision,
            "dataset": scan_dataset_payload(dataset),
            "tokens_version": TOKENS_VERSION,
        }
    )
    return f"tokens/{_UNSAFE.sub('_', model.id)}-{_UNSAFE.sub('_', dataset.id)}-{digest}"


def model_inputs_key(model: ModelSpec, dataset: DatasetSpec) -> str:
    """Key of the probe set as the model reads it (input ids and content positions per sample), beside
    the tokenised probe set of `tokens_key`: the shards of a scan tokenise once and share it."""
    return "model-inputs/" + tokens_key(model, dataset).removeprefix("tokens/")
