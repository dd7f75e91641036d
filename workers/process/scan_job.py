"""The scan jobs' entry points, called by the RQ tasks (workers/process/tasks.py) with resolved jobs.

`scan_layers` records layers over the probe set (one pass, artifacts reused); a sharded scan runs
`scan_layer_shard` once per shard and `merge_layer_shards` after the last. `open_context` opens a scanned
layer for the explain job (workers/process/explain_job.py). Each takes the process's WorkerRuntime (store,
models, caches) and specs the caller resolved and checked (workers/process/payloads.py); they raise named
errors from workers/errors.py.
"""

from __future__ import annotations

from collections.abc import Callable

from service.contract import (
    DatasetSpec,
    HookPoint,
    JobStage,
    ModelSpec,
    PipelineOptions,
    probe_profile_key,
)
from workers.analysis.assemble import ReportContext
from workers.errors import DeploymentMismatch, InvalidRequest, ScanMissing
from workers.process.prompt_profile import write_probe_profile
from workers.process.runtime import WorkerRuntime
from workers.scan.passes import PassProgress
from workers.scan.run import ScanInfo, layer_scan_id, scan_model_layers, stored_scans
from workers.scan.shards import ShardInfo, merge_shards, remove_shards, scan_shard, shard_key
from workers.scan.token_keys import scan_key

ProgressFn = Callable[[JobStage, int, int], None]
"""(stage, done, total); stage is "scanning" (samples), "explaining" or "simulating" (neurons)."""

__all__ = [
    "ProgressFn",
    "ScanInfo",
    "ShardInfo",
    "merge_layer_shards",
    "open_context",
    "scan_layer_shard",
    "scan_layers",
    "write_scan_profile",
]


def scan_layers(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    progress: ProgressFn | None = None,
    scan_progress: PassProgress | None = None,
) -> dict[int, ScanInfo]:
    """Scan `layers` unless their artifacts already exist (reused): in one pass over the probe set when
    their recorder state fits the runtime's scan memory budget, else in as few passes as fit.
    `scan_progress` gets every batch's ScanProgress (passes and samples)."""

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("scanning", done, total)

    infos = scan_model_layers(
        runtime.scan_setup, model, dataset, point, layers, options, report, scan_progress
    )
    write_scan_profile(runtime, model, dataset, point.id, infos, options)
    return infos


def write_scan_profile(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    infos: dict[int, ScanInfo],
    options: PipelineOptions,
) -> None:
    """After a scan: the probe set's profile for dry runs (cheap; each layer's own profile, which sizes all
    its neurons' prompts, is written by the layer's first explain job: `write_prompt_profile`)."""
    if not infos or dataset.modality != "text":  # vision-language probe sets are not profiled
        return
    key = probe_profile_key(model.id, model.revision, dataset)
    if runtime.reports.exists(key):
        return
    context = open_context(runtime, model, dataset, hook, min(infos), options)
    write_probe_profile(runtime.reports, model, dataset, context.probe)


def scan_layer_shard(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    shard: int,
    n_shards: int,
    batch_size: int,
    scan_progress: PassProgress | None = None,
) -> ShardInfo:
    """Record shard `shard` of `n_shards` of the probe set for every layer of `layers` that has neither
    its scan artifact nor this shard's artifact yet (both reused), with `batch_size` (the same for every
    shard and the merge) in as few passes as the runtime's scan memory budget allows."""
    from workers.models.device import default_scan_memory_bytes

    if model.units is not None:
        raise InvalidRequest(
            f"latents of dictionary {model.units.id} are scanned by one worker, not in shards"
        )
    setup = runtime.scan_setup
    store = setup.store
    keys: dict[int, str] = {}
    todo: list[int] = []
    for layer in sorted(set(layers)):
        scan = layer_scan_id(model, dataset, point.id, layer, options)
        key = shard_key(scan, shard, n_shards)
        if store.exists(scan_key(scan)) or store.exists(key):
            keys[layer] = key
        else:
            todo.append(layer)
    if not todo:
        return ShardInfo(keys=keys, n_samples=0, passes=0, seconds=0.0)
    adapter = setup.models.get(model)
    budget = setup.memory_bytes or default_scan_memory_bytes(str(adapter.device))
    info = scan_shard(
        store,
        adapter,
        dataset,
        point.id,
        todo,
        options,
        shard,
        n_shards,
        batch_size,
        budget,
        scan_progress,
        checkpoint_s=setup.checkpoint_s,
    )
    return ShardInfo(
        keys={**keys, **info.keys}, n_samples=info.n_samples, passes=info.passes, seconds=info.seconds
    )


def merge_layer_shards(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    n_shards: int,
    batch_size: int,
) -> dict[int, ScanInfo]:
    """Merge the `n_shards` shard artifacts of every layer without a scan artifact into it (exactly the
    one-shard scan's arrays), then delete the shard artifacts; reuse layers already scanned. A shard
    recorded with another batch size than `batch_size` is a DeploymentMismatch (its batches differ)."""
    store = runtime.store
    hook = point.id
    result, todo = stored_scans(store, model, dataset, hook, layers, options)
    for layer in todo:
        scan = layer_scan_id(model, dataset, hook, layer, options)
        for shard in range(n_shards):
            key = shard_key(scan, shard, n_shards)
            used = store.read_manifest(key).get("batch_size") if store.exists(key) else batch_size
            if used != batch_size:
                raise DeploymentMismatch(
                    f"shard {shard} of {n_shards} of scan {scan} was recorded with batch size {used}, this "
                    f"merge expects {batch_size}: give the API and the workers one NEURONLENS_SCAN_BATCH_SIZE"
                )
    merged = merge_shards(store, model, dataset, hook, todo, options, n_shards)
    for layer, scan in merged.items():
        manifest = store.read_manifest(scan_key(scan))
        seconds = float(manifest["seconds"])
        result[layer] = ScanInfo(scan, False, seconds, int(manifest["n_samples"]), int(manifest["n_tokens"]))
    remove_shards(store, [info.scan_id for info in result.values()], n_shards)
    write_scan_profile(runtime, model, dataset, hook, result, options)  # as a one-shard scan does
    return result


def open_context(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    options: PipelineOptions,
) -> ReportContext:
    """Open the layer's scan and tokenised probe set (kept open by the runtime's scan cache)."""
    scan = layer_scan_id(model, dataset, hook, layer, options)
    if not runtime.store.exists(scan_key(scan)):
        raise ScanMissing(
            f"layer {layer} of {model.id} (hook {hook}, probe set {dataset.id}, n_top {options.n_top}, "
            f"seed {options.seed}) has not been scanned: run its scan job first"
        )
    layer_scan = runtime.scans.layer_scan(scan)
    probe = runtime.scans.tokenized_probe(str(layer_scan.manifest["tokens_key"]))
    return ReportContext(model, dataset, hook, layer, options, layer_scan, probe)
