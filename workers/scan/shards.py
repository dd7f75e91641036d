"""Sharded scans: K workers each record part of the probe set; the merge is exactly the one-shard scan.

Exactness rests on three facts:
- A sample's activations depend (bitwise) on the batch it is padded into, so shards split the one-shard
  scan's own batch plan (samples sorted by length, `plan_batches`) into K contiguous runs of batches:
  every sample is recorded in the same batch as in a one-shard scan. Shards are disjoint and cover the
  probe set; the runs hold about equal tokens (rows × longest row, what a forward pass costs), not equal
  batch counts: batches of long samples cost several of short ones.
- Top-N is a total order, (max activation desc, sample id asc) through the recorder's `rank_keys`, so
  the top N of the union of the shards' top N are the one-shard top N, in the same order.
- The random records are drawn from the whole probe set's size and seed (`choose_random_ids`), never
  from a shard's samples, so every shard agrees on them and records those it holds; global max is a max,
  domain counts and tokens are sums.

A shard's state is an artifact `scan-shards/<scan_id>/<k>-of-<K>` holding the layer's arrays over its
samples plus `shard_ids` (int32, the sample ids it covers); `merge_shards` writes `scans/<scan_id>`.

The probe set is tokenised once per scan: the first shard to run stores the tokenised probe set and the
model inputs (token_keys.model_inputs_key), and the other shards read them (`shared_inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from service.contract import DatasetSpec, HookPoint, ModelSpec, PipelineOptions
from workers.data.loader import load_probe_set
from workers.errors import InvalidRequest, ScanMissing
from workers.models.base import ModelAdapter
from workers.models.range_checks import check_dataset, check_hook, check_layer
from workers.scan.artifacts import ACTIVATIONS_FILE, write_layer_scan
from workers.scan.checkpoint import CHECKPOINT_EVERY_S, PassCheckpoints
from workers.scan.passes import (
    PassProgress,
    ScanInputs,
    layer_arrays,
    plan_passes,
    probe_meta,
    record_in_passes,
    scan_manifest,
    store_tokens,
)
from workers.scan.recorder import EMPTY_KEY, LayerRecorder, rank_keys
from workers.scan.scanner import BatchPlan, choose_random_ids, plan_batches
from workers.scan.store import ArtifactStore
from workers.scan.token_keys import model_inputs_key, scan_id, scan_key, tokens_key
from workers.scan.tokens import (
    TokenizedProbe,
    build_tokenized_probe,
    read_model_inputs,
    read_tokenized_probe,
    write_model_inputs,
)

SHARD_IDS = "shard_ids"
"""Array of a shard artifact: the int32 sample ids it covers, sorted."""
_SUMMED = ("domain_positive", "domain_tokens")


def shard_key(scan: str, shard: int, n_shards: int) -> str:
    """Artifact key of shard `shard` (0-based) of `n_shards` of a layer scan."""
    return f"scan-shards/{scan}/{shard}-of-{n_shards}"


def batch_tokens(batch: BatchPlan) -> int:
    """A batch's padded content tokens (rows × longest row): what its forward pass costs."""
    return len(batch.rows) * batch.width


def shard_batches(batches: Sequence[BatchPlan], shard: int, n_shards: int) -> list[BatchPlan]:
    """Shard `shard` of `n_shards`: a contiguous run of the one-shard scan's batches, cut where the
    running token count (`batch_tokens`) comes closest to k/n_shards of the total, so shards hold about
    equal tokens (a shard may be empty when there are fewer batches than shards)."""
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise InvalidRequest(f"shard {shard} of {n_shards}: shards are numbered 0 … n_shards-1, n_shards ≥ 1")
    return list(batches[_cut(batches, shard, n_shards) : _cut(batches, shard + 1, n_shards)])


def _cut(batches: Sequence[BatchPlan], k: int, n_shards: int) -> int:
    """Index of the first batch of shard k: the batch boundary whose tokens before it come nearest to
    k/n_shards of all tokens (ties to the earlier one; boundaries only grow with k)."""
    before = np.concatenate([[0], np.cumsum([batch_tokens(batch) for batch in batches])])
    return int(np.argmin(np.abs(before - before[-1] * k / n_shards)))


def shared_inputs(store: ArtifactStore, adapter: ModelAdapter, dataset: DatasetSpec) -> ScanInputs:
    """The probe set as `adapter` reads it, tokenised once per scan: read from the store when another
    shard (or an earlier scan) stored it, else tokenised here and stored for the others."""
    model = adapter.spec
    key, inputs_key = tokens_key(model, dataset), model_inputs_key(model, dataset)
    samples = load_probe_set(dataset).samples
    if store.exists(key) and store.exists(inputs_key):
        probe = read_tokenized_probe(store, key)
        tokenized = read_model_inputs(store, inputs_key, probe, [sample.id for sample in samples])
        return ScanInputs(adapter, samples, tokenized, probe)
    tokenized = adapter.tokenize(samples)
    inputs = ScanInputs(
        adapter, samples, tokenized, build_tokenized_probe(samples, tokenized, adapter.patch_grid)
    )
    store_tokens(store, model, dataset, inputs.probe)
    if not store.exists(inputs_key):
        write_model_inputs(store, inputs_key, tokenized, probe_meta(model, dataset))
    return inputs


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What `scan_shard` wrote."""

    keys: dict[int, str]
    """Layer → shard artifact key."""
    n_samples: int
    """Samples of the probe set this shard recorded."""
    passes: int
    seconds: float


def scan_shard(
    store: ArtifactStore,
    adapter: ModelAdapter,
    dataset: DatasetSpec,
    hook: str,
    layers: Sequence[int],
    options: PipelineOptions,
    shard: int,
    n_shards: int,
    batch_size: int,
    budget_bytes: int,
    progress: PassProgress | None = None,
    inputs: ScanInputs | None = None,
    checkpoint_s: float = CHECKPOINT_EVERY_S,
) -> ShardInfo:
    """Record shard `shard` of `n_shards` of the probe set for `layers` (in as few passes as
    `budget_bytes` of recorder state allow) and store one shard artifact per layer.

    `batch_size` must be the same for every shard and the merge (it fixes the batches); `inputs` may
    pass an already tokenised probe set (else `shared_inputs`). Existing shard artifacts are kept. A retried
    shard resumes each pass from its checkpoint (written every `checkpoint_s` seconds).
    """
    model = adapter.spec
    point = _checked_hook(model, dataset, hook, layers)
    inputs = inputs or shared_inputs(store, adapter, dataset)
    probe = inputs.probe
    probe_key = store_tokens(store, model, dataset, probe)
    batches = shard_batches(plan_batches(inputs.tokenized, batch_size), shard, n_shards)
    sample_ids = np.sort(np.asarray([row for batch in batches for row in batch.rows], dtype=np.int64))
    random_ids = choose_random_ids(probe.n_samples, options.n_top, options.seed)
    plan = plan_passes(inputs, model, layers, options.n_top, len(random_ids), budget_bytes)
    keys: dict[int, str] = {}
    elapsed = [0.0]

    def write(recorders: dict[int, LayerRecorder], seconds: float) -> None:
        elapsed[0] += seconds
        for layer, recorder in recorders.items():
            scan = scan_id(model, dataset, hook, layer, options.n_top, options.seed)
            arrays = dict(
                layer_arrays(recorder, probe, random_ids, sample_ids), shard_ids=sample_ids.astype(np.int32)
            )
            manifest = scan_manifest(
                model, dataset, hook, layer, options, probe, probe_key, seconds, batch_size
            )
            manifest.update(scan_id=scan, shard=shard, n_shards=n_shards, device=str(adapter.device))
            keys[layer] = shard_key(scan, shard, n_shards)
            store.write(keys[layer], {ACTIVATIONS_FILE: save_tensors(arrays)}, manifest)

    if batches:
        scans = {layer: scan_id(model, dataset, hook, layer, options.n_top, options.seed) for layer in layers}
        identity = {"scans": scans, "shard": shard, "n_shards": n_shards, "batch_size": batch_size}
        checkpoints = PassCheckpoints(store, identity, checkpoint_s)
        passes = record_in_passes(
            inputs, point, plan, options.n_top, random_ids, batches, write, progress, checkpoints
        )
    else:  # fewer batches than shards: this shard holds no sample, its state is the empty recorder's
        empty = _empty_recorder(model, probe, options.n_top, len(random_ids))
        write(dict.fromkeys(sorted(set(layers)), empty), 0.0)
        passes = 0
    return ShardInfo(keys=keys, n_samples=int(sample_ids.size), passes=passes, seconds=elapsed[0])


def _checked_hook(model: ModelSpec, dataset: DatasetSpec, hook: str, layers: Sequence[int]) -> HookPoint:
    """The model's hook point `hook`, after checking it, the probe set and every layer (named errors)."""
    point = check_hook(model, hook)
    check_dataset(model, dataset.id)
    for layer in layers:
        check_layer(model, layer)
    return point


def _empty_recorder(model: ModelSpec, probe: TokenizedProbe, n_top: int, n_random: int) -> LayerRecorder:
    """The state of a shard that holds no sample (fewer batches than shards): a recorder that saw nothing."""
    return LayerRecorder(
        model.neurons_per_layer,
        min(n_top, probe.n_samples),
        probe.max_tokens,
        n_random,
        len(probe.domains),
        torch.device("cpu"),
        probe.n_samples,
    )


def merge_shards(
    store: ArtifactStore,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layers: Sequence[int],
    options: PipelineOptions,
    n_shards: int,
) -> dict[int, str]:
    """Merge the `n_shards` shard artifacts of each layer into its scan artifact `scans/<scan_id>`,
    byte-identical to a one-shard scan with the same batch size; layer → scan id. A layer whose scan
    artifact already exists is left as it is; a missing shard is ScanMissing naming it."""
    result = {}
    for layer in sorted(set(layers)):
        scan = scan_id(model, dataset, hook, layer, options.n_top, options.seed)
        result[layer] = scan
        if store.exists(scan_key(scan)):
            continue
        parts, manifests = [], []
        for shard in range(n_shards):
            key = shard_key(scan, shard, n_shards)
            if not store.exists(key):
                raise ScanMissing(
                    f"shard {shard} of {n_shards} of scan {scan} is not in {store.url}: scan it first"
                )
            parts.append(load_tensors(store.read_bytes(key, ACTIVATIONS_FILE)))
            manifests.append(store.read_manifest(key))
        manifest = {k: v for k, v in manifests[0].items() if k not in ("shard", "n_shards", "files")}
        manifest.update(seconds=round(sum(float(m["seconds"]) for m in manifests), 3), shards=n_shards)
        write_layer_scan(store, scan, merge_arrays(parts), manifest)
    return result


def remove_shards(store: ArtifactStore, scans: Sequence[str], n_shards: int) -> int:
    """Delete the `n_shards` shard artifacts of each layer scan in `scans` (after a merge wrote the layer
    artifacts, they are no longer needed); how many were removed."""
    removed = 0
    for scan in scans:
        for shard in range(n_shards):
            removed += store.delete(shard_key(scan, shard, n_shards))
    return removed


def merge_arrays(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine shard arrays (each with `shard_ids`) into the one-shard scan's arrays."""
    if not parts:
        raise ValueError("no shard arrays to merge")
    first = parts[0]
    top_max = np.concatenate([p["top_max"] for p in parts], axis=1)  # [neurons, K·N]
    top_ids = np.concatenate([p["top_ids"] for p in parts], axis=1)
    keys = rank_keys(torch.from_numpy(top_max), torch.from_numpy(top_ids.astype(np.int64)))
    keys[torch.from_numpy(top_ids < 0)] = EMPTY_KEY
    n_top = first["top_ids"].shape[1]
    order = keys.argsort(dim=1, descending=True)[:, :n_top].numpy()
    top_acts = np.concatenate([p["top_acts"] for p in parts], axis=1)
    random_acts = first["random_acts"].copy()
    for part in parts[1:]:
        held = np.isin(first["random_ids"], part[SHARD_IDS])
        random_acts[:, held] = part["random_acts"][:, held]
    merged = {
        "top_acts": np.take_along_axis(top_acts, order[:, :, None], axis=1),
        "top_ids": np.take_along_axis(top_ids, order, axis=1),
        "top_max": np.take_along_axis(top_max, order, axis=1),
        "global_max": np.max(np.stack([p["global_max"] for p in parts]), axis=0),
        "random_acts": random_acts,
        "random_ids": first["random_ids"],
    }
    if "sample_max" in first:  # each shard holds its own samples' maxima (-inf elsewhere)
        sample_max = first["sample_max"].copy()
        for part in parts[1:]:
            sample_max[:, part[SHARD_IDS]] = part["sample_max"][:, part[SHARD_IDS]]
        merged["sample_max"] = sample_max
    for name in _SUMMED:
        merged[name] = np.sum(np.stack([p[name] for p in parts]), axis=0, dtype=np.int64)
    return merged
