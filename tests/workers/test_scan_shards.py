"""Sharded scans merged exactly: K = 3 shards give byte-identical arrays to K = 1 and to a plain scan,
on MiniLM and tiny-llava; top-N ties go to the lower sample id however samples are batched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_tensors

from service.contract import DatasetSpec, ModelSpec, PipelineOptions, load_registry
from service.settings import load_settings
from workers.errors import InvalidRequest, ScanMissing
from workers.models.base import ModelAdapter
from workers.models.loader import ModelCache
from workers.process.scan_job import scan_layers
from workers.process.worker import build_runtime
from workers.scan.artifacts import ACTIVATIONS_FILE
from workers.scan.passes import prepare_inputs
from workers.scan.recorder import BatchView, LayerRecorder
from workers.scan.scanner import BatchPlan, length_runs, plan_batches
from workers.scan.shards import batch_tokens, merge_shards, scan_shard, shard_batches, shared_inputs
from workers.scan.store import FsspecArtifactStore
from workers.scan.token_keys import model_inputs_key, scan_key

BATCH = 32
BUDGET = 2**34


def _hashes(store: FsspecArtifactStore, scan: str) -> dict[str, str]:
    arrays = load_tensors(store.read_bytes(scan_key(scan), ACTIVATIONS_FILE))
    return {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in arrays.items()}


def _sharded(root: Path, model: ModelSpec, dataset: DatasetSpec, layers: list[int], n_shards: int) -> dict:
    store = FsspecArtifactStore(str(root / f"k{n_shards}"))
    adapter = ModelCache(store, "cpu").get(model)
    hook = model.default_hook
    # any order: shards are independent; the first to run tokenises and stores, the others read it
    for shard in reversed(range(n_shards)):
        info = scan_shard(
            store,
            adapter,
            dataset,
            hook,
            layers,
            PipelineOptions(),
            shard,
            n_shards,
            BATCH,
            BUDGET,
        )
        assert sorted(info.keys) == layers
    _assert_inputs_shared(store, adapter, dataset)
    scans = merge_shards(store, model, dataset, hook, layers, PipelineOptions(), n_shards)
    return {layer: _hashes(store, scan) for layer, scan in scans.items()}


def _assert_inputs_shared(store: FsspecArtifactStore, adapter: ModelAdapter, dataset: DatasetSpec) -> None:
    """The stored model inputs, as a shard reads them, are the adapter's own tokenisation."""
    assert store.exists(model_inputs_key(adapter.spec, dataset))
    tokenized = prepare_inputs(adapter, dataset).tokenized
    shared = shared_inputs(store, adapter, dataset).tokenized
    assert len(shared) == len(tokenized)
    for mine, stored in zip(tokenized, shared, strict=True):
        assert mine.sample_id == stored.sample_id and mine.tokens == stored.tokens
        for name in ("input_ids", "content_positions", "modality"):
            assert np.array_equal(getattr(mine, name), getattr(stored, name)), name


def _plain(root: Path, model: ModelSpec, dataset: DatasetSpec, layers: list[int]) -> dict:
    settings = load_settings(artifact_url=str(root / "plain"), device="cpu", scan_batch_size=BATCH)
    runtime = build_runtime(settings)
    point = model.hook(model.default_hook)
    infos = scan_layers(runtime, model, dataset, point, layers, PipelineOptions())
    return {layer: _hashes(runtime.store, info.scan_id) for layer, info in infos.items()}


@pytest.mark.parametrize(
    ("model_id", "dataset_id", "n_samples", "layers"),
    [("minilm-l6", "text-probe-v1", 96, [1, 4]), ("tiny-llava", "vl-probe-v1", 64, [0, 3])],
)
def test_three_shards_merge_into_the_one_shard_artifact(
    tmp_path: Path, model_id: str, dataset_id: str, n_samples: int, layers: list[int]
) -> None:
    registry = load_registry()
    dataset = registry.dataset(dataset_id).model_copy(update={"n_samples": n_samples})
    model = registry.model(model_id)
    one = _sharded(tmp_path, model, dataset, layers, 1)
    three = _sharded(tmp_path, model, dataset, layers, 3)
    assert one == three
    assert one == _plain(tmp_path, model, dataset, layers)
    assert set(one[layers[0]]) >= {
        "top_acts",
        "top_ids",
        "random_acts",
        "domain_positive",
        "global_max",
        "sample_max",
    }


def test_shards_beyond_the_batches_are_empty_and_merge_exactly(tmp_path: Path) -> None:
    """More shards than batches: the extra shards hold no sample (an empty recorder's state is stored)
    and the merge is still the one-shard artifact."""
    registry = load_registry()
    dataset = registry.dataset("text-probe-v1").model_copy(update={"n_samples": 40})
    model = registry.model("minilm-l6")
    store = FsspecArtifactStore(str(tmp_path / "probe"))
    inputs = prepare_inputs(ModelCache(store, "cpu").get(model), dataset)
    batches = plan_batches(inputs.tokenized, BATCH)
    n_shards = len(batches) + 2
    assert [] in [shard_batches(batches, shard, n_shards) for shard in range(n_shards)]
    assert _sharded(tmp_path, model, dataset, [2], n_shards) == _sharded(tmp_path, model, dataset, [2], 1)


def test_a_missing_shard_is_named(tmp_path: Path, minilm: ModelSpec, small_probe: DatasetSpec) -> None:
    store = FsspecArtifactStore(str(tmp_path))
    dataset = small_probe.model_copy(update={"n_samples": 40})
    adapter = ModelCache(store, "cpu").get(minilm)
    scan_shard(store, adapter, dataset, "mlp_act", [2], PipelineOptions(), 0, 2, BATCH, BUDGET)
    with pytest.raises(ScanMissing, match="shard 1 of 2"):
        merge_shards(store, minilm, dataset, "mlp_act", [2], PipelineOptions(), 2)
    with pytest.raises(InvalidRequest, match="shard 2 of 2"):
        shard_batches([], 2, 2)


def _plan(width: int, rows: int = 4) -> BatchPlan:
    lengths = np.full(rows, width, dtype=np.int64)
    return BatchPlan(list(range(rows)), width, 0, None, lengths)


def test_shards_are_contiguous_runs_of_batches_balanced_by_tokens() -> None:
    # Longest first, as plans run: one batch of 40-token rows costs as much as the four after it.
    batches = [_plan(40), _plan(10), _plan(10), _plan(10), _plan(10)]

    def positions(part: list[BatchPlan], among: list[BatchPlan]) -> list[int]:
        return [next(i for i, batch in enumerate(among) if batch is b) for b in part]

    parts = [shard_batches(batches, k, 2) for k in range(2)]
    assert [positions(part, batches) for part in parts] == [[0], [1, 2, 3, 4]]
    assert [sum(batch_tokens(b) for b in part) for part in parts] == [160, 160]
    even = [_plan(10) for _ in range(10)]
    thirds = [positions(shard_batches(even, k, 3), even) for k in range(3)]
    assert thirds == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert [positions(shard_batches(batches[:1], k, 2), batches) for k in range(2)] == [[], [0]]


def _tied_recorder(order: list[int]) -> dict[str, np.ndarray]:
    """12 samples, one neuron, one token; samples 2, 5, 7, 9 and 11 tie at the top value. Fed in `order`,
    4 per batch."""
    values = np.array([0.1, 0.2, 3.0, 0.3, 0.4, 3.0, 0.5, 3.0, 0.6, 3.0, 0.7, 3.0], dtype=np.float32)
    recorder = LayerRecorder(1, 3, 1, 0, 0, torch.device("cpu"))
    for begin in range(0, len(order), 4):
        rows = order[begin : begin + 4]
        lengths = np.ones(len(rows), dtype=np.int64)
        view = BatchView(
            sample_ids=torch.tensor(rows),
            lengths=torch.from_numpy(lengths),
            groups=length_runs(lengths),
            domain_ids=torch.zeros(len(rows), dtype=torch.int64),
            random_rows=None,
            random_slots=None,
        )
        recorder.update(torch.from_numpy(values[rows][:, None, None]), view)
    return recorder.arrays()


def test_ties_go_to_the_lowest_sample_ids_in_any_batch_order() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        arrays = _tied_recorder(rng.permutation(12).tolist())
        assert arrays["top_ids"][0].tolist() == [2, 5, 7]
        assert arrays["top_max"][0].tolist() == [3.0, 3.0, 3.0]
