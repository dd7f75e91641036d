"""How many layers one scan pass can record at once under a memory budget (docs/method.md#scan).

A pass holds one LayerRecorder per layer it records, on the scan device; `recorder_state_bytes` counts
that recorder's buffers exactly (workers/scan/recorder.py). `plan_layer_groups` splits the requested
layers into as few passes as fit the budget, the groups as even as possible. The budget is a plain
number of bytes chosen at the edge (`NEURONLENS_SCAN_MEMORY_BYTES`, or `default_scan_memory_bytes` of
workers/models/device.py).

Not counted: the model itself and one batch's activations (the same for one layer or all), and the
copies `arrays()` makes while a layer is written (one layer at a time, after the pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.contract import ModelSpec

_FP16, _FP32, _INT64 = 2, 4, 8


def recorder_state_bytes(n_neurons: int, n_top: int, n_random: int, max_tokens: int, n_domains: int) -> int:
    """Bytes of one layer's LayerRecorder buffers.

    Per neuron: top-N per-token fp16 records (N × T × 2), their max (float32), sample id and rank key
    (int64 each), the global max (float32), the random records' per-token fp16 values (R × T × 2), and
    per-domain positive counts (int64) with their float32 pending buffer, one extra row for unlabelled
    samples.
    """
    per_neuron = (
        n_top * max_tokens * _FP16
        + n_top * (_FP32 + 2 * _INT64)
        + _FP32
        + n_random * max_tokens * _FP16
        + (n_domains + 1) * (_INT64 + _FP32)
    )
    return n_neurons * per_neuron


@dataclass(frozen=True, slots=True)
class LayerGroupPlan:
    """The passes of one scan: which layers each records."""

    groups: list[list[int]]
    """Layers per pass, in increasing order; every requested layer exactly once."""
    bytes_per_layer: int
    """Recorder state of one layer (`recorder_state_bytes`)."""
    budget_bytes: int
    """The budget the plan was made for."""

    @property
    def passes(self) -> int:
        return len(self.groups)

    @property
    def fits(self) -> bool:
        """False when even one layer's state exceeds the budget (each pass then records one layer)."""
        return self.bytes_per_layer <= self.budget_bytes


def plan_layer_groups(
    model: ModelSpec,
    layers: Sequence[int],
    n_top: int,
    max_tokens: int,
    budget_bytes: int,
    n_random: int | None = None,
    n_domains: int = 0,
) -> LayerGroupPlan:
    """Plan the passes that record `layers` of `model` under `budget_bytes` of recorder state.

    `n_top` is the top-N kept per neuron, `n_random` the random records (default: `n_top`, as the scan
    draws them), `max_tokens` the probe set's longest sample in content tokens, `n_domains` its domain
    labels. As many layers share a pass as fit; the pass count is the least possible and the groups are
    contiguous runs of the sorted layers whose sizes differ by at most one. A layer that alone exceeds
    the budget still gets a pass of its own (`fits` is then False).
    """
    wanted = sorted(set(layers))
    if not wanted:
        raise ValueError("no layers to plan: name at least one layer")
    if budget_bytes < 0:
        raise ValueError(f"budget_bytes must be ≥ 0, got {budget_bytes}")
    per_layer = recorder_state_bytes(
        model.neurons_per_layer, n_top, n_top if n_random is None else n_random, max_tokens, n_domains
    )
    per_pass = max(1, budget_bytes // per_layer) if per_layer else len(wanted)
    n_passes = -(-len(wanted) // per_pass)
    base, extra = divmod(len(wanted), n_passes)
    groups, begin = [], 0
    for index in range(n_passes):
        size = base + (1 if index < extra else 0)
        groups.append(wanted[begin : begin + size])
        begin += size
    return LayerGroupPlan(groups=groups, bytes_per_layer=per_layer, budget_bytes=budget_bytes)
