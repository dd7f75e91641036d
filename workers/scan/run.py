"""Scan layers of a model over a probe set, reusing layers already in the artifact store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from service.contract import DatasetSpec, HookPoint, ModelSpec, PipelineOptions
from workers.models.device import default_scan_memory_bytes
from workers.models.dictionary_cache import DictionaryCache
from workers.models.loader import ModelCache
from workers.scan.artifacts import write_layer_scan
from workers.scan.checkpoint import CHECKPOINT_EVERY_S, PassCheckpoints
from workers.scan.dictionary_taps import open_taps
from workers.scan.passes import (
    PassProgress,
    ScanProgress,
    layer_arrays,
    plan_passes,
    prepare_inputs,
    record_in_passes,
    scan_manifest,
    store_tokens,
)
from workers.scan.recorder import LayerRecorder
from workers.scan.scanner import choose_random_ids, plan_batches
from workers.scan.store import ArtifactStore
from workers.scan.token_keys import scan_id, scan_key

SamplesProgress = Callable[[int, int], None]
"""(samples done, samples total), summed over the scan's passes."""


@dataclass(frozen=True, slots=True)
class ScanInfo:
    """What `scan_model_layers` did for one layer."""

    scan_id: str
    """Artifact key of the layer's scan (`scans/<scan_id>` in the store)."""
    reused: bool
    """True when the artifact already existed and nothing was recomputed."""
    seconds: float
    """Wall time of the pass that recorded this layer (shared by all layers of the pass; 0 if reused)."""
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


def stored_scans(
    store: ArtifactStore,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layers: list[int],
    options: PipelineOptions,
) -> tuple[dict[int, ScanInfo], list[int]]:
    """(ScanInfo of each of ``layers`` whose artifact is stored, marked reused; the others, ascending)."""
    stored: dict[int, ScanInfo] = {}
    todo: list[int] = []
    for layer in sorted(set(layers)):
        scan = layer_scan_id(model, dataset, hook, layer, options)
        if store.exists(scan_key(scan)):
            manifest = store.read_manifest(scan_key(scan))
            stored[layer] = ScanInfo(scan, True, 0.0, int(manifest["n_samples"]), int(manifest["n_tokens"]))
        else:
            todo.append(layer)
    return stored, todo


@dataclass(frozen=True)
class ScanSetup:
    """Where a scan reads its model from and writes its artifacts to, and how big its batches are."""

    store: ArtifactStore
    models: ModelCache
    batch_size: int
    """Samples per forward pass."""
    memory_bytes: int | None = None
    """Budget of the recorders' state per pass, bytes; None derives it from the device."""
    checkpoint_s: float = CHECKPOINT_EVERY_S
    """Seconds between two checkpoints of a running pass (workers/scan/checkpoint.py)."""
    dictionaries: DictionaryCache | None = None
    """Loaded dictionaries, for scans of latents (a fresh cache per scan when None)."""


def scan_model_layers(
    setup: ScanSetup,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    progress: SamplesProgress | None = None,
    scan_progress: PassProgress | None = None,
) -> dict[int, ScanInfo]:
    """Scan every layer without an artifact, in as few passes over the probe set as the scan memory budget
    allows (one when it fits: ``setup.memory_bytes``, else derived from the device); reuse the others. The
    model, hook point, probe set and layers are resolved and checked by the caller. `scan_progress` gets a
    ScanProgress after every batch; `progress` gets (samples done, samples total) summed over all passes."""
    hook = point.id
    store = setup.store
    result, todo = stored_scans(store, model, dataset, hook, layers, options)
    if not todo:
        return result
    adapter = setup.models.get(model)
    budget = setup.memory_bytes or default_scan_memory_bytes(str(adapter.device))
    weights = next(adapter.module.parameters())
    dtype = weights.dtype if weights.dtype in (torch.bfloat16, torch.float16) else torch.float32
    taps = open_taps(model, todo, adapter.device, setup.dictionaries or DictionaryCache(), dtype)
    inputs = replace(prepare_inputs(adapter, dataset), taps=taps)
    probe = inputs.probe
    probe_key = store_tokens(store, model, dataset, probe)
    random_ids = choose_random_ids(len(inputs.samples), options.n_top, options.seed)
    plan = plan_passes(inputs, model, todo, options.n_top, len(random_ids), budget)

    def write(recorders: dict[int, LayerRecorder], seconds: float) -> None:
        for layer, recorder in recorders.items():
            scan = layer_scan_id(model, dataset, hook, layer, options)
            manifest = scan_manifest(
                model, dataset, hook, layer, options, probe, probe_key, seconds, setup.batch_size
            )
            manifest.update(scan_id=scan, device=str(adapter.device), passes=plan.passes)
            if taps is not None:
                manifest["dictionary"] = taps.manifest(layer, recorder.positive_tokens(), probe.n_tokens)
            write_layer_scan(store, scan, layer_arrays(recorder, probe, random_ids), manifest)
            result[layer] = ScanInfo(scan, False, seconds, probe.n_samples, probe.n_tokens)

    def report(state: ScanProgress) -> None:
        if scan_progress is not None:
            scan_progress(state)
        if progress is not None:
            progress(
                state.passes_done * state.samples_total + state.samples_done,
                state.passes_planned * state.samples_total,
            )

    batches = plan_batches(inputs.tokenized, setup.batch_size)
    scans = {layer: layer_scan_id(model, dataset, hook, layer, options) for layer in todo}
    identity = {"scans": scans, "batch_size": setup.batch_size}
    checkpoints = PassCheckpoints(store, identity, setup.checkpoint_s)
    record_in_passes(inputs, point, plan, options.n_top, random_ids, batches, write, report, checkpoints)
    return result
