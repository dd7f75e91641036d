"""Scan variants bench_scan sets beside NeuronLens's own: a naive hook + topk scan, and the recorder on an
8×-wide sparse dictionary's latents. Not a bench itself (bench/run.py runs only bench_*.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

SAE_WIDTH = 8
"""Latents per hook value of the synthetic dictionary (minilm-l6's 1,536 MLP neurons: 12,288 latents)."""


def naive_hook_topk(
    ctx: dict[str, Any], layers: Sequence[int], n_top: int
) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """(step per batch plan, finish) of the scan a researcher writes by hand: forward hooks on `layers`
    that keep every sample's max activation per neuron over its content tokens, and torch.topk over the
    samples at the end (top-N ids and maxima only: no per-token records, counts or random records; the
    kept maxima grow with the probe set)."""
    import torch

    from workers.models.hooks import capture_activations, run_forward
    from workers.scan.scanner import content_activations

    adapter, samples, tokenized = ctx["adapter"], ctx["samples"], ctx["tokenized"]
    point = ctx["model"].hook_points[0]
    maxima: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def step(plan: Any) -> None:
        index = None if plan.index is None else torch.from_numpy(plan.index)
        padding = torch.arange(plan.width)[None, :, None] >= torch.from_numpy(plan.lengths)[:, None, None]

        def keep(layer: int, output: torch.Tensor) -> None:
            acts = content_activations(output, plan, index)
            maxima[layer].append(acts.masked_fill(padding, float("-inf")).amax(dim=1))

        inputs = adapter.make_batch([samples[i] for i in plan.rows], [tokenized[i] for i in plan.rows])
        with torch.inference_mode(), capture_activations(adapter.module, point, list(layers), True, keep):
            run_forward(partial(adapter.forward, inputs))

    def finish() -> None:
        for layer in layers:
            torch.cat(maxima[layer]).topk(n_top, dim=0)

    return step, finish


def sparse_recorder_seconds(ctx: dict[str, Any], n_top: int, every: int = 8) -> dict[str, float]:
    """The recorder on the latents of a synthetic 8×-wide ReLU dictionary over the model's MLP neurons
    (minilm-l6: 12,288 non-negative latents, most exactly 0), on every `every`-th batch of the probe set's
    plan with random hook-wide inputs: seconds encoding (matmul + ReLU), seconds recording (update +
    arrays), latent density and how many latents fire on fewer than N samples."""
    import torch

    from workers.scan.recorder import BatchView, LayerRecorder
    from workers.scan.scanner import length_runs, plan_batches

    generator = torch.Generator().manual_seed(0)
    width = ctx["model"].neurons_per_layer
    n_latents = SAE_WIDTH * width
    encoder = torch.randn((width, n_latents), generator=generator) / width**0.5
    bias = torch.full((n_latents,), -2.0) - 1.5 * torch.rand((n_latents,), generator=generator)
    probe = ctx["probe"]
    recorder = LayerRecorder(n_latents, n_top, probe.max_tokens, 0, 0, torch.device("cpu"), probe.n_samples)
    encode = record = 0.0
    fired = torch.zeros(n_latents)
    positive = total = 0
    with torch.inference_mode():
        for plan in plan_batches(ctx["tokenized"], ctx["batch_size"])[::every]:
            hidden = torch.randn((len(plan.rows), plan.width, width), generator=generator)
            started = time.perf_counter()
            latents = torch.relu(hidden @ encoder + bias)
            encode += time.perf_counter() - started
            view = BatchView(
                sample_ids=torch.tensor(plan.rows),
                lengths=torch.from_numpy(plan.lengths),
                groups=length_runs(plan.lengths),
                domain_ids=torch.zeros(len(plan.rows), dtype=torch.int64),
                random_rows=None,
                random_slots=None,
            )
            started = time.perf_counter()
            recorder.update(latents, view)
            record += time.perf_counter() - started
            fired += (latents.amax(dim=1) > 0).sum(dim=0)
            positive += int((latents > 0).sum())
            total += latents.numel()
        started = time.perf_counter()
        recorder.arrays()
        record += time.perf_counter() - started
    return {
        "encode_s": encode,
        "record_s": record,
        "density": positive / total,
        "latents": n_latents,
        "sparse_latents": int((fired < n_top).sum()),
    }
