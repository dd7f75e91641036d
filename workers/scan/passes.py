"""Recording several layers in as few passes as the memory budget allows, and writing their artifacts.

Settings-free: the caller hands in the loaded model, the store, the batch size and the byte budget
(workers/scan/run.py reads them from settings at the edge; workers/scan/shards.py reuses the same steps
for one shard of the probe set).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
from workers.data.base import ProbeSample
from workers.data.loader import load_probe_set
from workers.models.base import ModelAdapter, TokenizedSample
from workers.scan.checkpoint import PassCheckpoints
from workers.scan.dictionary_taps import DictionaryTaps
from workers.scan.memory_budget import LayerGroupPlan, plan_layer_groups
from workers.scan.recorder import LayerRecorder
from workers.scan.scanner import BatchPlan, ScanPass
from workers.scan.store import ArtifactStore
from workers.scan.token_keys import tokens_key
from workers.scan.tokens import TokenizedProbe, build_tokenized_probe, write_tokenized_probe


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Where a scan stands; reported after every batch."""

    passes_planned: int
    passes_done: int
    samples_done: int
    """Samples of the current pass done (it restarts at 0 with each pass)."""
    samples_total: int
    """Samples one pass covers (the probe set, or the shard's part of it)."""
    samples_resumed: int = 0
    """Samples of the current pass restored from its checkpoint (workers/scan/checkpoint.py), not read."""

    @property
    def fraction(self) -> float:
        """Share of the whole scan done, 0 … 1."""
        if not self.passes_planned or not self.samples_total:
            return 1.0
        return (self.passes_done * self.samples_total + self.samples_done) / (
            self.passes_planned * self.samples_total
        )


PassProgress = Callable[[ScanProgress], None]
PassDone = Callable[[dict[int, LayerRecorder], float], None]
"""Called after each pass with its layers' filled recorders and its wall seconds; the recorders are
dropped afterwards, so at most one group's state is held at a time."""


@dataclass(frozen=True)
class ScanInputs:
    """A loaded model with its probe set, tokenised: what every pass and every shard of a scan reads."""

    adapter: ModelAdapter
    samples: Sequence[ProbeSample]
    tokenized: Sequence[TokenizedSample]
    probe: TokenizedProbe
    taps: DictionaryTaps | None = None
    """The dictionaries whose latents are recorded instead of the hook's neurons (None: neurons)."""


def prepare_inputs(adapter: ModelAdapter, dataset: DatasetSpec) -> ScanInputs:
    """Load and tokenise `dataset`'s probe set for `adapter` (CPU work, once per scan)."""
    samples = load_probe_set(dataset).samples
    tokenized = adapter.tokenize(samples)
    return ScanInputs(
        adapter, samples, tokenized, build_tokenized_probe(samples, tokenized, adapter.patch_grid)
    )


def store_tokens(store: ArtifactStore, model: ModelSpec, dataset: DatasetSpec, probe: TokenizedProbe) -> str:
    """Write the tokenised probe set unless it is stored; its key."""
    key = tokens_key(model, dataset)
    if not store.exists(key):
        write_tokenized_probe(store, key, probe, probe_meta(model, dataset))
    return key


def plan_passes(
    inputs: ScanInputs, model: ModelSpec, layers: Sequence[int], n_top: int, n_random: int, budget_bytes: int
) -> LayerGroupPlan:
    """The layer groups for `inputs` under `budget_bytes` (workers/scan/memory_budget.py)."""
    probe = inputs.probe
    kept = min(n_top, probe.n_samples)
    return plan_layer_groups(
        model, layers, kept, probe.max_tokens, budget_bytes, n_random, len(probe.domains)
    )


def record_in_passes(
    inputs: ScanInputs,
    point: HookPoint,
    plan: LayerGroupPlan,
    n_top: int,
    random_ids: np.ndarray,
    batches: Sequence[BatchPlan],
    on_pass: PassDone,
    progress: PassProgress | None = None,
    checkpoints: PassCheckpoints | None = None,
) -> int:
    """Run `batches` once per group of `plan`, each pass recording its group's layers; hand each pass's
    recorders to `on_pass`; report progress after every batch. With `checkpoints`, a pass resumes from its
    latest checkpoint and writes one when due (workers/scan/checkpoint.py), and drops them once handed on.
    Returns the number of passes run."""
    total = sum(len(batch.rows) for batch in batches)
    for index, group in enumerate(plan.groups):
        started = time.perf_counter()
        scan = ScanPass(
            inputs.adapter,
            inputs.samples,
            inputs.tokenized,
            inputs.probe,
            point,
            group,
            n_top,
            random_ids,
            inputs.taps,
        )
        first = 0
        resumed = checkpoints.load(group, len(batches)) if checkpoints is not None else None
        if resumed is not None:
            scan.resume(resumed.states)
            first = resumed.batches_done
        done = skipped = sum(len(batch.rows) for batch in batches[:first])
        for position in range(first, len(batches)):
            scan.step(batches[position])
            done += len(batches[position].rows)
            if checkpoints is not None and position + 1 < len(batches) and checkpoints.due():
                states = {layer: recorder.state() for layer, recorder in scan.recorders.items()}
                checkpoints.save(group, position + 1, len(batches), states)
            if progress is not None:
                progress(ScanProgress(plan.passes, index, done, total, skipped))
        on_pass(scan.recorders, time.perf_counter() - started)
        if checkpoints is not None:
            checkpoints.drop(group)
        if progress is not None:
            progress(ScanProgress(plan.passes, index + 1, 0, total))
    return plan.passes


def layer_arrays(
    recorder: LayerRecorder,
    probe: TokenizedProbe,
    random_ids: np.ndarray,
    sample_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """A layer's artifact arrays: the recorder's plus the random ids and the tokens per domain (over
    `sample_ids` when given: a shard's samples; else the whole probe set)."""
    domain = probe.sample_domain if sample_ids is None else probe.sample_domain[sample_ids]
    lengths = probe.lengths if sample_ids is None else probe.lengths[sample_ids]
    labelled = domain >= 0
    domain_tokens = np.bincount(domain[labelled], weights=lengths[labelled], minlength=len(probe.domains))
    return dict(
        recorder.arrays(),
        random_ids=random_ids.astype(np.int32),
        domain_tokens=domain_tokens.astype(np.int64),
    )


def probe_meta(model: ModelSpec, dataset: DatasetSpec) -> dict[str, object]:
    return {
        "model": model.id,
        "model_revision": model.revision,
        "dataset": dataset.model_dump(mode="json"),
        "created_at": datetime.now(UTC).isoformat(),
    }


def scan_manifest(
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
    """The manifest of one layer's scan artifact (what was scanned, how, with which tokenised probe)."""
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
