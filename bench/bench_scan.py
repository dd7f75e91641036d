"""Scan figures on minilm-l6 over text-probe-v1 (4096 samples), side by side in one run:

- scan tokens/s ÷ plain forward tokens/s on the same length-sorted batches, for one layer (layer 5, the
  last: stopping after the hook skips almost nothing) and for all 6 layers (goal ≥ 0.97), with ONE
  torch intra-op thread (so a loaded 2-core machine perturbs the variants alike);
- all 6 layers in one scan ÷ one layer, in time (goal ≤ 1.3);
- scan memory (peak RSS of a fresh process scanning one layer) at 1× and 4× the probe set (goal: flat);
- a scan sharded over K = 2 worker processes ÷ K = 1, wall time (exactness and scale-out; on 2 shared
  cores no speed-up is expected).

Every row's detail ends with the load average when the bench ran.

The three variants run batch by batch in turn (this machine's 2 cores are shared, so load from other
processes then hits all three alike); each batch counts with its fastest time over ROUNDS rounds.
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
    fastest_seconds,
    load_average,
    load_scan_setup,
    memory_in_child,
    rss_bytes,
    sharded_wall_seconds,
)

ROUNDS = 3
SHARD_SAMPLES = 1024
"""Probe-set slice of the sharded-scan figure (each shard process loads the model and tokenises it)."""
ONE_LAYER = [5]
ALL_LAYERS = [0, 1, 2, 3, 4, 5]


def _setup(n_samples: int | None = None) -> dict[str, Any]:
    return load_scan_setup("minilm-l6", "text-probe-v1", n_samples)


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
        50,
        choose_random_ids(n_samples, 50, 0),
        ctx["batch_size"],
        lambda done, total: peak.append(rss_bytes()),
    )
    state = sum(array.nbytes for array in recorders[ONE_LAYER[0]].arrays().values())
    print(json.dumps({"scan_rss_bytes": max(peak) - before, "rss_bytes": max(peak), "state_bytes": state}))


def _memory(n_samples: int) -> dict[str, int]:
    return memory_in_child(__file__, n_samples)


def _sharded_row() -> dict[str, str]:
    one = sharded_wall_seconds("minilm-l6", "text-probe-v1", SHARD_SAMPLES, ALL_LAYERS, 1)
    two = sharded_wall_seconds("minilm-l6", "text-probe-v1", SHARD_SAMPLES, ALL_LAYERS, 2)
    return {
        "figure": "sharded scan wall time, K = 2 worker processes ÷ K = 1, minilm-l6 all 6 layers",
        "value": f"{two / one:.3f}",
        "goal": "report (merged arrays are byte-identical; 2 shared cores)",
        "detail": f"{two:.2f} s vs {one:.2f} s for {SHARD_SAMPLES} samples, each shard a fresh process "
        f"(model load + tokenising + its pass, 1 thread) plus the merge; {load_average()}",
    }


def main() -> list[dict[str, str]]:
    import torch

    torch.set_num_threads(1)  # fixed: the ratio is per thread, and steadier on a shared machine
    ctx = _setup()
    n_tokens = ctx["probe"].n_tokens
    plain, one, every = fastest_seconds(ctx, ONE_LAYER, ALL_LAYERS, 50, ROUNDS)
    rate = {name: n_tokens / seconds for name, seconds in (("plain", plain), ("one", one), ("all", every))}
    n_samples, batch = len(ctx["samples"]), ctx["batch_size"]
    base = (
        f"{n_tokens} content tokens, {n_samples} samples, batch {batch}, fastest of {ROUNDS} rounds per batch"
    )
    small, large = _memory(4096), _memory(4 * 4096)
    growth = large["scan_rss_bytes"] / max(small["scan_rss_bytes"], 1)
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
            "figure": "scan time, all 6 layers ÷ 1 layer (one pass)",
            "value": f"{every / one:.3f}",
            "goal": "≤ 1.3",
            "detail": f"{every:.2f} s vs {one:.2f} s (plain forward {plain:.2f} s); {load_average()}",
        },
        {
            "figure": "scan memory, 4× ÷ 1× probe set (RSS rise during a 1-layer pass)",
            "value": f"{growth:.3f}",
            "goal": "flat (≈ 1)",
            "detail": f"+{small['scan_rss_bytes'] / 2**20:.1f} MiB at 4096 samples, "
            f"+{large['scan_rss_bytes'] / 2**20:.1f} MiB at 16384 (process RSS "
            f"{small['rss_bytes'] / 2**20:.0f} / {large['rss_bytes'] / 2**20:.0f} MiB); recorder state "
            f"{small['state_bytes'] / 2**20:.1f} → {large['state_bytes'] / 2**20:.1f} MiB "
            "(it grows only with the longest sample)",
        },
        _sharded_row(),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        _memory_child(int(sys.argv[2]))
    else:
        for row in main():
            print(row)
