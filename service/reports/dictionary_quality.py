"""A dictionary's reconstruction quality and latent density per layer, read from its scans' manifests
(written by the scan: workers/scan/dictionary_taps.py)."""

from __future__ import annotations

import json

from service.contract import (
    DatasetSpec,
    DictionaryLayerQuality,
    DictionaryQuality,
    ModelSpec,
    PipelineOptions,
    scan_id,
    scan_manifest_key,
)
from service.contract.objects import ObjectStore


def _layer_quality(
    store: ObjectStore, model: ModelSpec, dataset: DatasetSpec, layer: int
) -> DictionaryLayerQuality:
    options = PipelineOptions()
    raw = store.read(
        scan_manifest_key(scan_id(model, dataset, model.default_hook, layer, options.n_top, options.seed))
    )
    recorded = json.loads(raw).get("dictionary") if raw is not None else None
    if not isinstance(recorded, dict):
        return DictionaryLayerQuality(layer=layer, scanned=False)
    fields = set(DictionaryLayerQuality.model_fields) - {"layer", "scanned"}
    return DictionaryLayerQuality(layer=layer, scanned=True, **{name: recorded.get(name) for name in fields})


def dictionary_quality(store: ObjectStore, model: ModelSpec, dataset: DatasetSpec) -> DictionaryQuality:
    """The quality of the dictionary ``model`` is seen through (``model.units``) on ``dataset``."""
    spec = model.units
    if spec is None:
        raise ValueError("dictionary_quality needs the model seen through a dictionary (ModelSpec.through)")
    layers = [_layer_quality(store, model, dataset, layer) for layer in spec.layer_ids]
    return DictionaryQuality(model=model.id, dataset=dataset.id, dictionary=spec, layers=layers)
