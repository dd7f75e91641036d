"""Scan layers of a model over a probe set, reusing layers already in the artifact store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from service.contract import (
    PIPELINE_VERSION,
    SCAN_VERSION,
    DatasetSpec,
    HookPoint,
    ModelSpec,
    PipelineOptions,
)
from workers.data.loader import load_probe_set
from workers.models.loader import ModelCache
from workers.scan.artifacts import write_layer_scan
from workers.scan.keys import scan_id, scan_key, tokens_key
from workers.scan.recorder import LayerRecorder
from workers.scan.scanner import choose_random_ids, record_layers
from workers.scan.store import ArtifactStore
from workers.scan.tokens import TokenizedProbe, build_tokenized_probe, write_tokenized_probe

ScanProgress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ScanInfo:
    """What `scan_model_layers` did for one layer."""

    scan_id: str
    """Artifact key of the layer's scan (`scans/<scan_id>` in the store)."""
    reused: bool
    """True when the artifact already existed and nothing was recomputed."""
    seconds: float
    """Wall time of this call's pass over the probe set (shared by all layers of the pass; 0 if reused)."""
    n_samples: int
    n_tokens: int
    """Content tokens scanned."""


def layer_scan_id(
    model: ModelSpec, dataset: DatasetSpec, hook: str, layer: int, options: PipelineOptions
) -> str:
    return scan_id(model, dataset, hook, layer, options.n_top, options.seed)


def scan_exists(
    store: ArtifactStore,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    options: PipelineOptions,
) -> bool:
    """True when a complete scan artifact of this layer is in the store."""
    return store.exists(scan_key(layer_scan_id(model, dataset, hook, layer, options)))


@dataclass(frozen=True)
class ScanSetup:
    """Where a scan reads its model from and writes its artifacts to, and how big its batches are."""

    store: ArtifactStore
    models: ModelCache
    batch_size: int
    """Samples per forward pass."""


def scan_model_layers(
    setup: ScanSetup,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    progress: ScanProgress | None = None,
) -> dict[int, ScanInfo]:
    """Scan every layer without an artifact in one pass over the probe set; reuse the others. The model,
    hook point, probe set and layers are resolved and checked by the caller."""
    hook = point.id
    store = setup.store
    result: dict[int, ScanInfo] = {}
    todo: list[int] = []
    for layer in sorted(set(layers)):
        scan = layer_scan_id(model, dataset, hook, layer, options)
        if store.exists(scan_key(scan)):
            manifest = store.read_manifest(scan_key(scan))
            result[layer] = ScanInfo(scan, True, 0.0, int(manifest["n_samples"]), int(manifest["n_tokens"]))
        else:
            todo.append(layer)
    if not todo:
        return result
    started = time.perf_counter()
    adapter = setup.models.get(model)
    samples = load_probe_set(dataset).samples
    tokenized = adapter.tokenize(samples)
    probe = build_tokenized_probe(samples, tokenized, adapter.patch_grid)
    probe_key = tokens_key(model, dataset)
    if not store.exists(probe_key):
        write_tokenized_probe(store, probe_key, probe, _probe_meta(model, dataset))
    random_ids = choose_random_ids(len(samples), options.n_top, options.seed)
    recorders = record_layers(
        adapter,
        samples,
        tokenized,
        probe,
        point,
        todo,
        options.n_top,
        random_ids,
        setup.batch_size,
        progress,
    )
    seconds = time.perf_counter() - started
    for layer in todo:
        scan = layer_scan_id(model, dataset, hook, layer, options)
        arrays = _layer_arrays(recorders[layer], probe, random_ids)
        manifest = _scan_manifest(
            model, dataset, hook, layer, options, probe, probe_key, seconds, setup.batch_size
        )
        write_layer_scan(store, scan, arrays, dict(manifest, scan_id=scan, device=str(adapter.device)))
        result[layer] = ScanInfo(scan, False, seconds, probe.n_samples, probe.n_tokens)
    return result


def _layer_arrays(
    recorder: LayerRecorder, probe: TokenizedProbe, random_ids: np.ndarray
) -> dict[str, np.ndarray]:
    labelled = probe.sample_domain >= 0
    domain_tokens = np.bincount(
        probe.sample_domain[labelled], weights=probe.lengths[labelled], minlength=len(probe.domains)
    )
    return dict(
        recorder.arrays(),
        random_ids=random_ids.astype(np.int32),
        domain_tokens=domain_tokens.astype(np.int64),
    )


def _probe_meta(model: ModelSpec, dataset: DatasetSpec) -> dict[str, object]:
    return {
        "model": model.id,
        "model_revision": model.revision,
        "dataset": dataset.model_dump(mode="json"),
        "created_at": datetime.now(UTC).isoformat(),
    }


def _scan_manifest(
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    options: PipelineOptions,
    probe: TokenizedProbe,
    probe_key: str,
    seconds: float,
    batch_size: int,
) -> dict[str, object]:
    return {
        "scan_version": SCAN_VERSION,
        "pipeline_version": PIPELINE_VERSION,
        "model": model.id,
        "model_revision": model.revision,
        "hook": hook,
        "layer": layer,
        "dataset": dataset.model_dump(mode="json"),
        "n_top": options.n_top,
        "seed": options.seed,
        "n_samples": probe.n_samples,
        "n_tokens": probe.n_tokens,
        "max_tokens": probe.max_tokens,
        "domains": probe.domains,
        "tokens_key": probe_key,
        "seconds": round(seconds, 3),
        "batch_size": batch_size,
        "torch": torch.__version__,
        "created_at": datetime.now(UTC).isoformat(),
    }
