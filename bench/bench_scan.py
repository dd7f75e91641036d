"""Scan figures on minilm-l6 over its registry default probe set (text-probe-v2, 4096 samples), side by
side in one run:

- scan tokens/s ÷ plain forward tokens/s on the same length-sorted batches, for one layer (layer 5, the
  last: stopping after the hook skips almost nothing) and for all 6 layers (goal ≥ 0.97), with ONE
  torch intra-op thread (so a loaded 2-core machine perturbs the variants alike); beside them a naive
  hook + topk scan of all 6 layers (bench/_scan_variants.py), the tool a researcher writes instead;
- all 6 layers in one scan ÷ one layer, in time (goal ≤ 1.3);
- scan memory (peak RSS of a fresh process scanning one layer) at 1× and 4× the probe set (goal: flat),
  and the naive scan's;
- the recorder on an 8×-wide sparse dictionary's latents (12,288 per layer, most exactly 0) ÷ encoding
  them;
- a scan sharded over K = 2 worker processes ÷ K = 1, wall time, with the shards' token balance.

Every row's detail ends with the load average when the bench ran.

The variants run batch by batch in turn (this machine's 2 cores are shared, so load from other
processes then hits all alike); each batch counts with its fastest time over ROUNDS rounds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import (  # noqa: E402  (after the path set-up above)
    fastest_variants,
    load_average,
    load_scan_setup,
    memory_in_child,
    rss_bytes,
    shard_tokens,
    sharded_wall_seconds,
)

ROUNDS = 3
SHARD_SAMPLES = 1024
"""Probe-set slice of the sharded-scan figure (each shard process loads the model and tokenises it)."""
ONE_LAYER = [5]
ALL_LAYERS = [0, 1, 2, 3, 4, 5]
N_TOP = 50
MODEL = "minilm-l6"


def _dataset() -> str:
    """The registry's default probe set of MODEL."""
    from service.contract import load_registry

    return load_registry().model(MODEL).datasets[0]


def _setup(n_samples: int | None = None) -> dict[str, Any]:
    return load_scan_setup(MODEL, _dataset(), n_samples)


def _naive_memory_child(n_samples: int) -> None:
    """In a fresh process: the naive hook + topk scan of one layer; print its RSS rise during the pass."""
    ctx = _setup(n_samples)
    from bench._scan_variants import naive_hook_topk
    from workers.scan.scanner import plan_batches

    step, finish = naive_hook_topk(ctx, ONE_LAYER, N_TOP)
    before = rss_bytes()
    peak = [before]
    for plan in plan_batches(ctx["tokenized"], ctx["batch_size"]):
        step(plan)
        peak.append(rss_bytes())
    finish()
    peak.append(rss_bytes())
    print(json.dumps({"scan_rss_bytes": max(peak) - before, "rss_bytes": max(peak), "state_bytes": 0}))


def _memory_child(n_samples: int) -> None:
    """Run in a fresh process: scan one layer, print how far resident memory rose during the pass
    (sampled after every batch) above where it stood before it, and the recorder's state size."""
    ctx = _setup(n_samples)
    from workers.scan.scanner import choose_random_ids, record_layers

    before = rss_bytes()
    peak = [before]
    recorders = record_layers(
        ctx["adapter"],
        ctx["samples"],
        ctx["tokenized"],
        ctx["probe"],
        ctx["model"].hook_points[0],
        ONE_LAYER,
        N_TOP,
        choose_random_ids(n_samples, N_TOP, 0),
        ctx["batch_size"],
        lambda done, total: peak.append(rss_bytes()),
    )
    state = sum(array.nbytes for array in recorders[ONE_LAYER[0]].arrays().values())
    print(json.dumps({"scan_rss_bytes": max(peak) - before, "rss_bytes": max(peak), "state_bytes": state}))


def _memory(n_samples: int, naive: bool = False) -> dict[str, int]:
    return memory_in_child(__file__, n_samples, "--memory-child-naive" if naive else "--memory-child")


def _sharded_row() -> dict[str, str]:
    one = sharded_wall_seconds(MODEL, _dataset(), SHARD_SAMPLES, ALL_LAYERS, 1)
    two = sharded_wall_seconds(MODEL, _dataset(), SHARD_SAMPLES, ALL_LAYERS, 2)
    balance = "/".join(str(tokens) for tokens in shard_tokens(_setup(SHARD_SAMPLES), 2))
    return {
        "figure": "sharded scan wall time, K = 2 worker processes ÷ K = 1, minilm-l6 all 6 layers",
        "value": f"{two / one:.3f}",
        "goal": "report (merged arrays are byte-identical; 2 shared cores)",
        "detail": f"{two:.2f} s vs {one:.2f} s for {SHARD_SAMPLES} samples, each shard a fresh process "
        f"(model load + tokenising or reading the stored tokenisation + its pass, 1 thread) plus the "
        f"merge; shard tokens (rows × longest row) {balance}; {load_average()}",
    }


def _sparse_row() -> dict[str, str]:
    from bench._scan_variants import sparse_recorder_seconds

    sparse = sparse_recorder_seconds(_setup(), N_TOP)
    return {
        "figure": f"recorder ÷ encoding, {sparse['latents']:,} sparse latents (8× minilm-l6's MLP)",
        "value": f"{sparse['record_s'] / sparse['encode_s']:.3f}",
        "goal": "cheap (≪ 1)",
        "detail": f"recording {sparse['record_s']:.2f} s (update + arrays) vs encoding "
        f"{sparse['encode_s']:.2f} s (matmul + ReLU of a random dictionary) over every 8th batch of the "
        f"plan, 1 thread; latent density {sparse['density']:.4f}, {sparse['sparse_latents']:,} latents "
        f"fire on fewer than {N_TOP} samples; {load_average()}",
    }


def main() -> list[dict[str, str]]:
    import torch

    from bench._scan_variants import naive_hook_topk

    torch.set_num_threads(1)  # fixed: the ratio is per thread, and steadier on a shared machine
    ctx = _setup()
    n_tokens = ctx["probe"].n_tokens
    naive = {"naive": lambda: naive_hook_topk(ctx, ALL_LAYERS, N_TOP)}
    fastest = fastest_variants(ctx, ONE_LAYER, ALL_LAYERS, N_TOP, ROUNDS, naive)
    plain, one, every = fastest["plain"], fastest["one"], fastest["all"]
    rate = {name: n_tokens / seconds for name, seconds in fastest.items()}
    n_samples, batch = len(ctx["samples"]), ctx["batch_size"]
    base = (
        f"{_dataset()}: {n_tokens} content tokens, {n_samples} samples, batch {batch}, fastest of {ROUNDS} "
        "interleaved rounds per batch"
    )
    small, large = _memory(4096), _memory(4 * 4096)
    naive_small, naive_large = _memory(4096, naive=True), _memory(4 * 4096, naive=True)
    growth = large["scan_rss_bytes"] / max(small["scan_rss_bytes"], 1)
    naive_growth = naive_large["scan_rss_bytes"] / max(naive_small["scan_rss_bytes"], 1)
    device = str(ctx["adapter"].device)
    return [
        {
            "figure": "scan ÷ plain forward tokens/s, minilm-l6, 1 layer (L5)",
            "value": f"{rate['one'] / rate['plain']:.3f}",
            "goal": "≥ 0.9",
            "detail": f"{rate['one']:.0f} vs {rate['plain']:.0f} tok/s on {device}, 1 thread; {base}; "
            f"{load_average()}",
        },
        {
            "figure": "scan ÷ plain forward tokens/s, minilm-l6, all 6 layers, 1 intra-op thread",
            "value": f"{rate['all'] / rate['plain']:.3f}",
            "goal": "≥ 0.97",
            "detail": f"{rate['all']:.0f} vs {rate['plain']:.0f} tok/s on {device}; {load_average()}",
        },
        {
            "figure": "naive hook + topk ÷ plain forward tokens/s, minilm-l6, all 6 layers",
            "value": f"{rate['naive'] / rate['plain']:.3f}",
            "goal": "report",
            "detail": "per-sample maxima kept by forward hooks, torch.topk at the end (no per-token "
            "records, counts or random records), interleaved with the rows above; "
            f"{load_average()}",
        },
        {
            "figure": "scan time, all 6 layers ÷ 1 layer (one pass)",
            "value": f"{every / one:.3f}",
            "goal": "≤ 1.3",
            "detail": f"{every:.2f} s vs {one:.2f} s (plain forward {plain:.2f} s); {load_average()}",
        },
        {
            "figure": "scan memory, 4× ÷ 1× probe set (RSS rise during a 1-layer pass)",
            "value": f"{growth:.3f}",
            "goal": "≤ 1.25 (flat)",
            "detail": f"+{small['scan_rss_bytes'] / 2**20:.1f} MiB at 4096 samples, "
            f"+{large['scan_rss_bytes'] / 2**20:.1f} MiB at 16384 (process RSS "
            f"{small['rss_bytes'] / 2**20:.0f} / {large['rss_bytes'] / 2**20:.0f} MiB); recorder state "
            f"{small['state_bytes'] / 2**20:.1f} → {large['state_bytes'] / 2**20:.1f} MiB "
            "(it grows only with the longest sample)",
        },
        {
            "figure": "naive hook + topk memory, 4× ÷ 1× probe set (RSS rise during a 1-layer pass)",
            "value": f"{naive_growth:.3f}",
            "goal": "report",
            "detail": f"+{naive_small['scan_rss_bytes'] / 2**20:.1f} MiB at 4096 samples, "
            f"+{naive_large['scan_rss_bytes'] / 2**20:.1f} MiB at 16384",
        },
        _sparse_row(),
        _sharded_row(),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        _memory_child(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--memory-child-naive":
        _naive_memory_child(int(sys.argv[2]))
    else:
        for row in main():
            print(row)
