"""Layer-group planning under a memory budget, and multi-pass scans: every layer of MiniLM in as few
passes as the budget allows, each layer's artifact identical to scanning it alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.numpy import load as load_tensors

from service.contract import DatasetSpec, ModelSpec, PipelineOptions
from service.settings import load_settings
from workers.models.device import default_scan_memory_bytes
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import scan_layers
from workers.process.worker import build_runtime
from workers.scan.artifacts import ACTIVATIONS_FILE
from workers.scan.memory_budget import plan_layer_groups, recorder_state_bytes
from workers.scan.passes import ScanProgress, prepare_inputs
from workers.scan.recorder import LayerRecorder
from workers.scan.token_keys import scan_key

N_SAMPLES = 96
ALL_LAYERS = [0, 1, 2, 3, 4, 5]
BATCH = 48


def test_state_bytes_are_the_recorders_buffers() -> None:
    recorder = LayerRecorder(96, 5, 11, 4, 3, torch.device("cpu"))
    buffers = [value for value in vars(recorder).values() if isinstance(value, torch.Tensor)]
    assert recorder_state_bytes(96, 5, 4, 11, 3) == sum(t.numel() * t.element_size() for t in buffers)


def test_groups_are_as_few_and_as_even_as_fit(minilm: ModelSpec) -> None:
    per_layer = recorder_state_bytes(minilm.neurons_per_layer, 50, 50, 30, 4)
    plan = plan_layer_groups(minilm, [5, 0, 3, 1, 2, 4], 50, 30, 6 * per_layer, n_domains=4)
    assert plan.groups == [ALL_LAYERS] and plan.fits
    plan = plan_layer_groups(minilm, ALL_LAYERS, 50, 30, 4 * per_layer, n_domains=4)
    assert plan.groups == [[0, 1, 2], [3, 4, 5]]  # 2 passes: 3 + 3 rather than 4 + 2
    plan = plan_layer_groups(minilm, ALL_LAYERS, 50, 30, 2 * per_layer + 1, n_domains=4)
    assert plan.groups == [[0, 1], [2, 3], [4, 5]]
    plan = plan_layer_groups(minilm, [1, 2], 50, 30, per_layer - 1, n_domains=4)
    assert plan.groups == [[1], [2]] and not plan.fits
    with pytest.raises(ValueError, match="no layers"):
        plan_layer_groups(minilm, [], 50, 30, per_layer)


def test_default_budget_is_a_share_of_available_memory() -> None:
    budget = default_scan_memory_bytes("cpu")
    with open("/proc/meminfo") as handle:
        available = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable"))
    assert 0.3 * available < budget < 0.7 * available


def _probe(small_probe: DatasetSpec) -> DatasetSpec:
    return small_probe.model_copy(update={"n_samples": N_SAMPLES})


def _runtime(tmp_path: Path, name: str, budget: int | None = None) -> WorkerRuntime:
    settings = load_settings(
        artifact_url=str(tmp_path / name), device="cpu", scan_batch_size=BATCH, scan_memory_bytes=budget
    )
    return build_runtime(settings)


def _hashes(runtime: WorkerRuntime, scan: str) -> dict[str, str]:
    arrays = load_tensors(runtime.store.read_bytes(scan_key(scan), ACTIVATIONS_FILE))
    return {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in arrays.items()}


def _scan_counting(runtime: WorkerRuntime, minilm: ModelSpec, probe: DatasetSpec, layers: list[int]) -> tuple:
    """Scan, counting forward passes of the model (one per batch and pass) and progress reports."""
    adapter = runtime.models.get(minilm)  # the model the scan runs: the runtime loads it once
    calls: list[int] = []
    states: list[ScanProgress] = []
    handle = adapter.module.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        infos = scan_layers(
            runtime, minilm, probe, minilm.hook("mlp_act"), layers, PipelineOptions(), None, states.append
        )
    finally:
        handle.remove()
    return infos, len(calls), states


@pytest.fixture(scope="module")
def per_layer(tmp_path_factory: pytest.TempPathFactory, minilm: ModelSpec, small_probe: DatasetSpec) -> dict:
    """Each layer scanned alone (six scans): layer → sha256 of every tensor of its artifact."""
    runtime = _runtime(tmp_path_factory.mktemp("alone"), "store")
    probe = _probe(small_probe)
    hashes = {}
    for layer in ALL_LAYERS:
        info = scan_layers(runtime, minilm, probe, minilm.hook("mlp_act"), [layer], PipelineOptions())[layer]
        hashes[layer] = _hashes(runtime, info.scan_id)
    return hashes


@pytest.mark.parametrize(("layers_per_pass", "passes"), [(6, 1), (2, 3)])
def test_all_layers_run_in_the_planned_passes_with_identical_artifacts(
    tmp_path: Path,
    minilm: ModelSpec,
    small_probe: DatasetSpec,
    per_layer: dict,
    layers_per_pass: int,
    passes: int,
) -> None:
    probe = _probe(small_probe)
    plain = _runtime(tmp_path, "plain")
    tokenized = prepare_inputs(plain.models.get(minilm), probe).probe
    state = recorder_state_bytes(
        minilm.neurons_per_layer, 50, 50, tokenized.max_tokens, len(tokenized.domains)
    )
    runtime = _runtime(tmp_path, "store", layers_per_pass * state + state // 2)
    infos, forwards, states = _scan_counting(runtime, minilm, probe, ALL_LAYERS)
    batches = -(-N_SAMPLES // BATCH)
    assert forwards == passes * batches
    assert {s.passes_planned for s in states} == {passes}
    assert [(s.passes_done, s.samples_done) for s in states if s.samples_done == N_SAMPLES] == [
        (index, N_SAMPLES) for index in range(passes)
    ]
    assert states[-1] == ScanProgress(passes, passes, 0, N_SAMPLES)
    assert (
        len([s for s in states if s.passes_done == 0 and s.samples_done]) == batches
    )  # every batch reported
    for layer in ALL_LAYERS:
        assert _hashes(runtime, infos[layer].scan_id) == per_layer[layer]
        assert runtime.store.read_manifest(scan_key(infos[layer].scan_id))["passes"] == passes
