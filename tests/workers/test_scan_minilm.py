"""Scanning the bundled MiniLM: the recorded statistics against a brute-force plain forward pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from service.contract import (
    DatasetSpec,
    ModelSource,
    ModelSpec,
    PipelineOptions,
    ScanJobPayload,
    load_registry,
)
from service.settings import load_settings
from workers.data.loader import load_probe_set
from workers.errors import InvalidRequest, ModelWeightsMissing
from workers.models.loader import weights_path
from workers.process.payloads import parse_scan_job
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import scan_layers
from workers.process.worker import build_runtime
from workers.scan.artifacts import LayerScan
from workers.scan.run import ScanInfo, scan_exists
from workers.scan.scanner import choose_random_ids

NEURONS = [0, 11, 42, 777, 1535]
LAYER = 5


@pytest.fixture(scope="module")
def brute_force(minilm: ModelSpec, small_probe: DatasetSpec) -> list[np.ndarray]:
    """Layer-5 activations [content tokens, neurons] per sample from plain forward passes in probe order."""
    path = weights_path(minilm)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    captured: list[torch.Tensor] = []
    handle = model.encoder.layer[LAYER].intermediate.register_forward_hook(
        lambda _m, _a, out: captured.append(out.detach())
    )
    texts = [sample.text for sample in load_probe_set(small_probe).samples]
    result = []
    try:
        with torch.inference_mode():
            for begin in range(0, len(texts), 50):  # natural order, unlike the scan's length-sorted batches
                enc = tokenizer(
                    texts[begin : begin + 50],
                    truncation=True,
                    max_length=64,
                    padding=True,
                    return_tensors="pt",
                )
                model(**enc)
                acts = captured.pop()
                for row, n in enumerate(enc["attention_mask"].sum(dim=1).tolist()):
                    result.append(acts[row, 1 : n - 1].numpy())  # drop [CLS] and [SEP]
    finally:
        handle.remove()
    return result


def test_top_samples_and_their_activations_match_brute_force(
    small_scan: dict[int, ScanInfo], worker_runtime: WorkerRuntime, brute_force: list[np.ndarray]
) -> None:
    scan = LayerScan(worker_runtime.store, small_scan[LAYER].scan_id)
    sample_max = np.stack([acts.max(axis=0) for acts in brute_force])  # [samples, neurons]
    n_top = scan.top_ids.shape[1]
    assert n_top == 50
    for neuron in NEURONS:
        order = np.argsort(-sample_max[:, neuron], kind="stable")
        expected = sample_max[order, neuron]
        np.testing.assert_allclose(scan.top_max[neuron], expected[:n_top], atol=1e-4)
        if expected[n_top - 1] - expected[n_top] > 1e-4:  # no near-tie at the cut: same set of samples
            assert set(scan.top_ids[neuron].tolist()) == set(order[:n_top].tolist())
        gaps = np.diff(expected[: n_top + 1])
        for rank in range(n_top):
            if (rank == 0 or -gaps[rank - 1] > 1e-4) and -gaps[rank] > 1e-4:  # rank unambiguous
                assert scan.top_ids[neuron, rank] == order[rank]
        stored = scan.top_acts(neuron)
        for rank, sample in enumerate(scan.top_ids[neuron][:5]):
            real = brute_force[sample][:, neuron]
            np.testing.assert_allclose(stored[rank, : real.size], real, atol=2e-3, rtol=1e-3)
            assert not stored[rank, real.size :].any()
        np.testing.assert_allclose(scan.global_max[neuron], sample_max[:, neuron].max(), atol=1e-4)


def test_random_records_and_domain_counts_match_brute_force(
    small_scan: dict[int, ScanInfo],
    worker_runtime: WorkerRuntime,
    brute_force: list[np.ndarray],
    small_probe: DatasetSpec,
) -> None:
    scan = LayerScan(worker_runtime.store, small_scan[LAYER].scan_id)
    assert scan.random_ids.tolist() == choose_random_ids(len(brute_force), 50, seed=0).tolist()
    for neuron in NEURONS:
        stored = scan.random_acts(neuron)
        for slot, sample in enumerate(scan.random_ids[:10]):
            real = brute_force[sample][:, neuron]
            np.testing.assert_allclose(stored[slot, : real.size], real, atol=2e-3, rtol=1e-3)
    probe = worker_runtime.scans.tokenized_probe(scan.manifest["tokens_key"])
    samples = load_probe_set(small_probe).samples
    assert probe.domains == list(dict.fromkeys(s.domain for s in samples))
    domain_of = [probe.domains.index(s.domain) for s in samples]
    expected_tokens = np.bincount(domain_of, weights=[len(a) for a in brute_force])
    assert scan.domain_tokens.tolist() == expected_tokens.astype(int).tolist()
    expected = np.zeros((1536, len(probe.domains)))
    for sample, acts in enumerate(brute_force):
        expected[:, domain_of[sample]] += (acts > 0).sum(axis=0)
    # Activations within float noise of 0 may land on either side; allow 0.1% of a domain's tokens.
    assert np.abs(scan.domain_positive - expected).max() <= max(2, 0.001 * expected_tokens.max())


def test_tokens_artifact_holds_content_tokens(
    small_scan: dict[int, ScanInfo],
    worker_runtime: WorkerRuntime,
    brute_force: list[np.ndarray],
    minilm: ModelSpec,
) -> None:
    scan = LayerScan(worker_runtime.store, small_scan[LAYER].scan_id)
    probe = worker_runtime.scans.tokenized_probe(scan.manifest["tokens_key"])
    tokenizer = AutoTokenizer.from_pretrained(weights_path(minilm), local_files_only=True)
    assert probe.n_samples == 600 and probe.lengths.tolist() == [len(a) for a in brute_force]
    assert probe.n_tokens == small_scan[LAYER].n_tokens == scan.manifest["n_tokens"]
    for sample in (0, 1, 599):
        text = load_probe_set_text(sample)
        assert list(probe.tokens[sample]) == tokenizer.tokenize(text)


def load_probe_set_text(sample: int) -> str:
    from workers.data.text_probe import generate_sample

    return generate_sample(sample).text


def test_second_call_reuses_artifacts_and_new_layers_are_added(
    tmp_path: Path, minilm: ModelSpec, small_probe: DatasetSpec
) -> None:
    # A private store: the session store may already hold these layers from other tests.
    runtime = build_runtime(load_settings(artifact_url=str(tmp_path), device="cpu"))
    point = minilm.hook("mlp_act")
    first_scan = scan_layers(runtime, minilm, small_probe, point, [2, 5], PipelineOptions())
    assert all(not info.reused for info in first_scan.values())
    first = first_scan[LAYER].scan_id
    manifest = tmp_path / "scans" / first / "manifest.json"
    written = os.stat(manifest).st_mtime_ns
    stages: list[tuple[str, int, int]] = []
    again = scan_layers(
        runtime, minilm, small_probe, point, [5, 2], PipelineOptions(), lambda *a: stages.append(a)
    )
    assert {layer: info.reused for layer, info in again.items()} == {2: True, 5: True}
    assert again[5].scan_id == first and os.stat(manifest).st_mtime_ns == written
    assert not stages  # nothing was run
    assert not scan_exists(runtime.store, minilm, small_probe, "mlp_act", 0, PipelineOptions())
    mixed = scan_layers(
        runtime, minilm, small_probe, point, [0, 5], PipelineOptions(), lambda *a: stages.append(a)
    )
    assert (mixed[0].reused, mixed[5].reused) == (False, True)
    assert stages[-1] == ("scanning", 600, 600)
    assert scan_exists(runtime.store, minilm, small_probe, "mlp_act", 0, PipelineOptions())
    # Options that change the recorded numbers change the key.
    assert not scan_exists(runtime.store, minilm, small_probe, "mlp_act", 5, PipelineOptions(seed=1))


def _scan_payload(hook: str, layers: list[int]) -> ScanJobPayload:
    options = PipelineOptions()
    return ScanJobPayload(
        model="minilm-l6", hook=hook, layers=layers, dataset="text-probe-v1", options=options
    )


def test_bad_input_and_missing_weights_are_named_errors(
    worker_runtime: WorkerRuntime, minilm: ModelSpec, small_probe: DatasetSpec
) -> None:
    registry = load_registry()
    with pytest.raises(InvalidRequest, match="layer 6 is out of range: minilm-l6 has layers 0–5"):
        parse_scan_job(registry, _scan_payload("mlp_act", [6]))
    with pytest.raises(InvalidRequest, match="hook point 'attn' is not offered by minilm-l6: choose mlp_act"):
        parse_scan_job(registry, _scan_payload("attn", [1]))
    point = minilm.hook("mlp_act")
    missing = minilm.model_copy(
        update={"id": "ghost", "source": ModelSource(kind="python-package", package="no_such_weights_pkg")}
    )
    with pytest.raises(ModelWeightsMissing, match="no_such_weights_pkg"):
        scan_layers(worker_runtime, missing, small_probe, point, [1], PipelineOptions())
    no_path = minilm.model_copy(
        update={
            "id": "ghost2",
            "source": ModelSource(kind="hub-or-path", path="/nonexistent/neuronlens/model"),
        }
    )
    with pytest.raises(ModelWeightsMissing, match="nothing is downloaded"):
        scan_layers(worker_runtime, no_path, small_probe, point, [1], PipelineOptions())
