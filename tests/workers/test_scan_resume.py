"""Scans that resume (issue 20): a scan pass checkpoints its recorder state in the artifact store, and a
scan (or shard) interrupted mid-pass resumes from its last checkpoint instead of sample 0, with arrays
byte-identical to an uninterrupted scan. The interruption is what a Redis outage does to a running scan:
the progress write after a batch raises (redis ConnectionError), failing the job, which is then retried."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from safetensors.numpy import load as load_tensors

from service.contract import PipelineOptions, load_registry
from workers.models.loader import ModelCache
from workers.scan.artifacts import ACTIVATIONS_FILE
from workers.scan.checkpoint import CHECKPOINT_ROOT
from workers.scan.passes import ScanProgress, prepare_inputs
from workers.scan.run import ScanSetup, scan_model_layers
from workers.scan.scanner import plan_batches
from workers.scan.shards import scan_shard, shard_batches, shard_key
from workers.scan.store import FsspecArtifactStore
from workers.scan.token_keys import scan_id, scan_key

BATCH, LAYERS, SAMPLES = 8, [1, 4], 48
"""6 batches of 8 samples per pass (3 per shard of 2); two layers recorded in one pass."""


class Outage:
    """A progress callback that fails like a Redis outage after ``after`` batches, and counts the samples
    each run read (those it did not restore from a checkpoint)."""

    def __init__(self, after: int | None) -> None:
        self.after, self.batches, self.read, self.resumed = after, 0, 0, 0

    def __call__(self, state: ScanProgress) -> None:
        if state.samples_done == 0:  # a pass ended
            return
        self.batches += 1
        self.read = state.samples_done - state.samples_resumed
        self.resumed = state.samples_resumed
        if self.after is not None and self.batches >= self.after:
            raise redis.ConnectionError("Error 111 connecting to redis:6379. Connection refused.")


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    registry = load_registry()
    dataset = registry.dataset("text-probe-v1").model_copy(update={"n_samples": SAMPLES})
    return registry.model("minilm-l6"), dataset


def _arrays(store: FsspecArtifactStore, key: str) -> dict:
    return load_tensors(store.read_bytes(key, ACTIVATIONS_FILE))


def _same(first: dict, second: dict) -> None:
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name


def test_a_scan_failed_mid_pass_resumes_from_its_checkpoint_with_identical_arrays(
    tmp_path: Path, minilm: tuple
) -> None:
    model, dataset = minilm
    point, options = model.hook(model.default_hook), PipelineOptions()
    plain = FsspecArtifactStore(str(tmp_path / "plain"))
    models = ModelCache(plain, "cpu")
    scan_model_layers(
        ScanSetup(plain, models, BATCH, checkpoint_s=3600), model, dataset, point, LAYERS, options
    )

    store = FsspecArtifactStore(str(tmp_path / "resumed"))
    setup = ScanSetup(store, models, BATCH, checkpoint_s=0.0)  # a checkpoint after every batch: chunk = 1
    first = Outage(after=4)
    with pytest.raises(redis.ConnectionError):
        scan_model_layers(setup, model, dataset, point, LAYERS, options, scan_progress=first)
    second = Outage(after=None)
    scan_model_layers(setup, model, dataset, point, LAYERS, options, scan_progress=second)
    # The retry restored the 4 batches the outage interrupted after and read only the other 2.
    assert (second.resumed, second.read) == (4 * BATCH, SAMPLES - 4 * BATCH)
    for layer in LAYERS:
        scan = scan_id(model, dataset, point.id, layer, options.n_top, options.seed)
        _same(_arrays(plain, scan_key(scan)), _arrays(store, scan_key(scan)))
    assert not (tmp_path / "resumed" / CHECKPOINT_ROOT).exists() or not any(
        (tmp_path / "resumed" / CHECKPOINT_ROOT).rglob("*.safetensors")
    )  # dropped once the artifacts were written


def test_a_shard_resumes_and_rereads_at_most_the_chunk_since_its_last_checkpoint(
    tmp_path: Path, minilm: tuple
) -> None:
    model, dataset = minilm
    options, hook = PipelineOptions(), model.default_hook
    store = FsspecArtifactStore(str(tmp_path / "shards"))
    adapter = ModelCache(store, "cpu").get(model)
    inputs = prepare_inputs(adapter, dataset)
    # Shards hold about equal tokens: the one of the short samples has more batches; it is interrupted.
    parts = [shard_batches(plan_batches(inputs.tokenized, BATCH), k, 2) for k in range(2)]
    index = max(range(2), key=lambda k: len(parts[k]))
    assert len(parts[index]) >= 3

    def shard(progress: Outage, checkpoint_s: float, root: str = "shards") -> FsspecArtifactStore:
        target = FsspecArtifactStore(str(tmp_path / root))
        scan_shard(
            target,
            adapter,
            dataset,
            hook,
            LAYERS,
            options,
            index,
            2,
            BATCH,
            2**34,
            progress,
            inputs,
            checkpoint_s,
        )
        return target

    whole = shard(Outage(None), 3600, "whole")
    with pytest.raises(redis.ConnectionError):
        shard(Outage(after=2), 0.0)
    retry = Outage(None)
    shard(retry, 3600)
    # the 2 batches before the outage come from the checkpoint; only the shard's other batches are read
    rest = sum(len(batch.rows) for batch in parts[index][2:])
    assert (retry.resumed, retry.read) == (2 * BATCH, rest)
    for layer in LAYERS:
        key = shard_key(scan_id(model, dataset, hook, layer, options.n_top, options.seed), index, 2)
        _same(_arrays(whole, key), _arrays(store, key))
