"""Vision-language scan figures on tiny-llava over vl-probe-v1 (512 samples), side by side in one run:

- scan tokens/s ÷ plain forward tokens/s on the same length-sorted batches, for one layer (layer 3, the
  last) and for all 4 layers (goal ≥ 0.9); both include building the batch (image preprocessing by the
  real LlavaProcessor), as a scan does;
- all 4 layers in one scan ÷ one layer, in time (goal ≤ 1.3);
- peak scan memory at 1× and 4× the probe set: the peak resident set (ru_maxrss) of a fresh process that
  loads the model, tokenises the probe set and scans one layer (goal: the same within 10%); the detail
  adds how far RSS (/proc/self/statm, sampled after every batch) rises during the pass itself;
- GPU: a random-weight model with llava-1.5-7b's shapes in bf16, where a GPU is present; this row says
  so when there is none (nothing is measured then).

Tokens are content tokens (64 image patches + caption tokens per sample). The variants run batch by batch
in turn (the machine's cores are shared, so load from other processes hits all alike); each batch counts
with its fastest time over ROUNDS rounds.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import (  # noqa: E402  (after the path set-up above)
    fastest_seconds,
    load_average,
    load_scan_setup,
    memory_in_child,
    rss_bytes,
)

MODEL = "tiny-llava"
DATASET = "vl-probe-v1"
ROUNDS = 3
ONE_LAYER = [3]
ALL_LAYERS = [0, 1, 2, 3]
N_TOP = 50


def _setup(n_samples: int | None = None) -> dict[str, Any]:
    return load_scan_setup(MODEL, DATASET, n_samples)


def _memory_child(n_samples: int) -> None:
    """In a fresh process: scan one layer; print the RSS rise during the pass, the process's peak RSS
    (ru_maxrss) and the recorder's state size."""
    ctx = _setup(n_samples)
    from workers.scan.scanner import ScanPass, choose_random_ids, plan_batches, record_layers

    point = ctx["model"].hook_points[0]
    random_ids = choose_random_ids(n_samples, N_TOP, 0)
    # One throwaway batch first, so the allocator's pools for batch-sized tensors exist before `before`.
    warm_up = ScanPass(
        ctx["adapter"], ctx["samples"], ctx["tokenized"], ctx["probe"], point, ONE_LAYER, N_TOP, random_ids
    )
    warm_up.step(plan_batches(ctx["tokenized"], ctx["batch_size"])[0])  # the longest batch
    del warm_up
    before = rss_bytes()
    peak = [before]
    recorders = record_layers(
        ctx["adapter"],
        ctx["samples"],
        ctx["tokenized"],
        ctx["probe"],
        point,
        ONE_LAYER,
        N_TOP,
        random_ids,
        ctx["batch_size"],
        lambda done, total: peak.append(rss_bytes()),
    )
    state = sum(array.nbytes for array in recorders[ONE_LAYER[0]].arrays().values())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result = {
        "scan_rss_bytes": max(peak) - before,
        "rss_bytes": max(peak),
        "maxrss_bytes": maxrss,
        "state_bytes": state,
        "n_tokens": ctx["probe"].n_tokens,
    }
    print(json.dumps(result))


def _memory(n_samples: int) -> dict[str, int]:
    return memory_in_child(__file__, n_samples)


def _gpu_row() -> dict[str, str]:
    import torch

    figure = "GPU: llava-1.5-7b shapes (random weights, bf16) scan tokens/s, ÷ plain, GPU memory"
    if not torch.cuda.is_available():
        return {
            "figure": figure,
            "value": "n/a",
            "goal": "measured where a GPU is available",
            "detail": f"no GPU in this task (torch {torch.__version__}, torch.cuda.is_available() is False): "
            "not measured",
        }
    return {
        "figure": figure,
        "value": "not measured",
        "goal": "measured where a GPU is available",
        "detail": f"a GPU is present ({torch.cuda.get_device_name(0)}): run bench/gpu_llava7b.py for the "
        "7B-shaped figures (all 32 layers in one pass vs one layer, tokens/s, peak GPU memory)",
    }


def main() -> list[dict[str, str]]:
    import torch

    torch.set_num_threads(1)  # fixed, as bench_scan: steadier ratios on a shared machine
    ctx = _setup()
    n_tokens = ctx["probe"].n_tokens
    plain, one, every = fastest_seconds(ctx, ONE_LAYER, ALL_LAYERS, N_TOP, ROUNDS)
    rate = {name: n_tokens / seconds for name, seconds in (("plain", plain), ("one", one), ("all", every))}
    n_samples, batch = len(ctx["samples"]), ctx["batch_size"]
    device = str(ctx["adapter"].device)
    base = (
        f"{n_tokens} content tokens (patches + caption), {n_samples} samples, batch {batch}, "
        f"fastest of {ROUNDS} rounds per batch"
    )
    small, large = _memory(n_samples), _memory(4 * n_samples)
    growth = large["maxrss_bytes"] / max(small["maxrss_bytes"], 1)
    mib = 2**20
    skipped = "the scan stops after the hooked module, so the rest of the last layer is skipped"
    return [
        {
            "figure": f"VL scan ÷ plain forward tokens/s, {MODEL}, 1 layer (L{ONE_LAYER[0]})",
            "value": f"{rate['one'] / rate['plain']:.3f}",
            "goal": "≥ 0.9",
            "detail": f"{rate['one']:.0f} vs {rate['plain']:.0f} tok/s on {device}; {base}; {skipped}",
        },
        {
            "figure": f"VL scan ÷ plain forward tokens/s, {MODEL}, all {len(ALL_LAYERS)} layers",
            "value": f"{rate['all'] / rate['plain']:.3f}",
            "goal": "≥ 0.9",
            "detail": f"{rate['all']:.0f} vs {rate['plain']:.0f} tok/s on {device}",
        },
        {
            "figure": f"VL scan time, all {len(ALL_LAYERS)} layers ÷ 1 layer (one pass), {MODEL}",
            "value": f"{every / one:.3f}",
            "goal": "≤ 1.3",
            "detail": f"{every:.2f} s vs {one:.2f} s (plain forward {plain:.2f} s), 1 thread; "
            f"{load_average()}",
        },
        {
            "figure": f"VL scan peak memory, 4× ÷ 1× probe set (peak RSS of a fresh scan process), {MODEL}",
            "value": f"{growth:.3f}",
            "goal": "same within 10% (0.9–1.1)",
            "detail": f"ru_maxrss {small['maxrss_bytes'] / mib:.0f} MiB at {n_samples} samples "
            f"({small['n_tokens']} tokens) vs {large['maxrss_bytes'] / mib:.0f} MiB at {4 * n_samples} "
            f"({large['n_tokens']}): model load, tokenising the set (64 samples per processor call) and a "
            f"1-layer pass; RSS rise during the pass +{small['scan_rss_bytes'] / mib:.1f} / "
            f"+{large['scan_rss_bytes'] / mib:.1f} MiB; recorder state {small['state_bytes'] / mib:.2f} / "
            f"{large['state_bytes'] / mib:.2f} MiB",
        },
        _gpu_row(),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        _memory_child(int(sys.argv[2]))
    else:
        for row in main():
            print(row)
