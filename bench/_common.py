"""What the benches share: loading a model with its tokenised probe set, timing plain forward passes
against scan steps batch by batch, resident memory, a bench's memory measurement in a fresh process
(bench_scan, bench_vl), stopping a server process (bench_api, bench_llm) and the explanation request of
bench_quality and bench_llm. Not a bench itself
(bench/run.py runs only bench_*.py)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_scan_setup(model_id: str, dataset_id: str, n_samples: int | None = None) -> dict[str, Any]:
    """The model's adapter, the probe set's samples (``n_samples`` of them when given), their tokenisation
    and tokenised probe, the model spec and the scan batch size, on the CPU and offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from service.contract import load_registry
    from service.settings import load_settings
    from workers.data.loader import load_probe_set
    from workers.process.worker import build_runtime
    from workers.scan.tokens import build_tokenized_probe

    registry = load_registry()
    model = registry.model(model_id)
    dataset = registry.dataset(dataset_id)
    if n_samples is not None:
        dataset = dataset.model_copy(update={"n_samples": n_samples})
    settings = load_settings(device="cpu")
    adapter = build_runtime(settings).models.get(model)
    samples = load_probe_set(dataset).samples
    tokenized = adapter.tokenize(samples)
    probe = build_tokenized_probe(samples, tokenized, adapter.patch_grid)
    return {
        "adapter": adapter,
        "samples": samples,
        "tokenized": tokenized,
        "probe": probe,
        "model": model,
        "batch_size": settings.scan_batch_size,
    }


def explanation_request(model: Any, dataset: Any, layer: int, neurons: list[int], **fields: Any) -> Any:
    """An `ExplanationRequest` for `neurons` of `layer` of registry `model` at its default hook over
    registry `dataset`; ``fields``: the request's other fields (explainer, simulator, options, …)."""
    from service.contract import ExplanationRequest

    return ExplanationRequest(
        model=model.id, layer=layer, neurons=neurons, hook=model.default_hook, dataset=dataset.id, **fields
    )


def interleaved_seconds(
    ctx: dict[str, Any],
    one_layer: Sequence[int],
    all_layers: Sequence[int],
    n_top: int,
    extra: dict[str, Callable[[], tuple[Callable[[Any], None], Callable[[], None]]]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per batch for a plain forward pass ("plain") and for scan steps of ``one_layer`` ("one") and
    of ``all_layers`` ("all") over the same batches, alternated batch by batch in rotating order so that
    load from other processes hits all alike. ``extra``: more variants by name, each a factory of (step
    per batch plan, finish) made fresh for the round. The last entry of each list but plain's is the
    finish: moving the state off the device (the recorders' arrays), part of a scan."""
    import torch

    from workers.scan.scanner import ScanPass, choose_random_ids, plan_batches

    adapter, samples, tokenized = ctx["adapter"], ctx["samples"], ctx["tokenized"]
    point = ctx["model"].hook_points[0]
    random_ids = choose_random_ids(len(samples), n_top, 0)
    passes = {
        name: ScanPass(adapter, samples, tokenized, ctx["probe"], point, layers, n_top, random_ids)
        for name, layers in (("one", one_layer), ("all", all_layers))
    }

    def plain(plan: Any) -> None:
        with torch.inference_mode():
            adapter.forward(
                adapter.make_batch([samples[i] for i in plan.rows], [tokenized[i] for i in plan.rows])
            )

    def arrays_of(scan: Any) -> Callable[[], None]:
        def finish() -> None:
            for recorder in scan.recorders.values():
                recorder.arrays()

        return finish

    runs: dict[str, Callable[[Any], None]] = {"plain": plain}
    finish: dict[str, Callable[[], None]] = {}
    for name, scan in passes.items():
        runs[name], finish[name] = scan.step, arrays_of(scan)
    for name, make in (extra or {}).items():
        runs[name], finish[name] = make()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index, plan in enumerate(plan_batches(tokenized, ctx["batch_size"])):
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            started = time.perf_counter()
            runs[name](plan)
            seconds[name].append(time.perf_counter() - started)
    seconds["plain"].append(0.0)
    for name, done in finish.items():
        started = time.perf_counter()
        done()
        seconds[name].append(time.perf_counter() - started)
    return seconds


def fastest_seconds(
    ctx: dict[str, Any], one_layer: Sequence[int], all_layers: Sequence[int], n_top: int, rounds: int
) -> tuple[float, float, float]:
    """(plain, one layer, all layers) seconds over the probe set: one warm-up pass, then per batch the
    fastest of ``rounds`` interleaved rounds (a batch slowed by another process in one round is not
    counted), summed over batches."""
    fastest = fastest_variants(ctx, one_layer, all_layers, n_top, rounds)
    return fastest["plain"], fastest["one"], fastest["all"]


def fastest_variants(
    ctx: dict[str, Any],
    one_layer: Sequence[int],
    all_layers: Sequence[int],
    n_top: int,
    rounds: int,
    extra: dict[str, Callable[[], tuple[Callable[[Any], None], Callable[[], None]]]] | None = None,
) -> dict[str, float]:
    """`fastest_seconds` for every variant of `interleaved_seconds` (plain, one, all and ``extra``)."""
    interleaved_seconds(ctx, one_layer, all_layers, n_top, extra)  # first-call allocations, kernels
    timed = [interleaved_seconds(ctx, one_layer, all_layers, n_top, extra) for _ in range(rounds)]
    return {name: float(np.min([r[name] for r in timed], axis=0).sum()) for name in timed[0]}


def rss_bytes() -> int:
    """This process's resident set now (/proc/self/statm)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def memory_in_child(script: str, n_samples: int, flag: str = "--memory-child") -> dict[str, int]:
    """Run ``script FLAG n_samples`` in a fresh process (offline) and return the JSON object it prints
    last."""
    out = subprocess.run(
        [sys.executable, script, flag, str(n_samples)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM a server the bench started and wait for it; SIGKILL when it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_average() -> str:
    """The 1/5/15-minute load average, for the detail column (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def shard_tokens(ctx: dict[str, Any], n_shards: int) -> list[int]:
    """Tokens (rows × longest row) of each of ``n_shards`` shards of the probe set's batch plan."""
    from workers.scan.scanner import plan_batches
    from workers.scan.shards import batch_tokens, shard_batches

    batches = plan_batches(ctx["tokenized"], ctx["batch_size"])
    return [
        sum(batch_tokens(batch) for batch in shard_batches(batches, shard, n_shards))
        for shard in range(n_shards)
    ]


def sharded_wall_seconds(
    model_id: str, dataset_id: str, n_samples: int, layers: Sequence[int], n_shards: int
) -> float:
    """Wall seconds of a scan split into ``n_shards`` shards, each a fresh process (model load, tokenising
    and its shard's pass), all started at once, plus the merge into the layer artifacts."""
    import tempfile

    from service.contract import PipelineOptions, load_registry
    from workers.scan.shards import merge_shards
    from workers.scan.store import FsspecArtifactStore

    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO_ROOT / "bench" / "_shard_child.py"),
                    model_id,
                    dataset_id,
                    str(n_samples),
                    ",".join(map(str, layers)),
                    str(shard),
                    str(n_shards),
                    root,
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                env=dict(os.environ, HF_HUB_OFFLINE="1"),
            )
            for shard in range(n_shards)
        ]
        if any(child.wait() != 0 for child in children):
            raise RuntimeError(f"a shard process of {model_id} failed")
        registry = load_registry()
        dataset = registry.dataset(dataset_id).model_copy(update={"n_samples": n_samples})
        model = registry.model(model_id)
        merge_shards(
            FsspecArtifactStore(root), model, dataset, model.default_hook, layers, PipelineOptions(), n_shards
        )
        return time.perf_counter() - started
