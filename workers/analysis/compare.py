"""A neuron of two checkpoints compared on one probe set (docs/method.md#comparisons). Pure functions.

From the two layer scans (same probe set, same seed): the Pearson correlation of the per-sample maxima
over every probe sample (scan layout 2 keeps them), the Pearson correlation over the tokens of the samples
both scans hold per-token activations for (the shared random records and the samples common to both top
sets), the Jaccard overlap of the two top-N sample sets, the same overlap with the sets taken by value
(near-ties at the boundary counted on both sides), and the max-activation ratio; then the verdict rule
over these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.contract.comparisons import Verdict, VerdictRule
from workers.scan.artifacts import LayerScan
from workers.simulate import scoring


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a neuron's activations on the probe set agree between base and target."""

    pearson_max: float | None
    """Over every sample's max; None when either side is constant."""
    pearson_tokens: float | None
    n_tokens: int
    jaccard_top: float
    top_overlap: float
    """Jaccard of the two top sets taken by value (see :func:`top_overlap`): what the rule reads."""
    base_max: float
    target_max: float
    identical: bool
    """Both per-sample maxima are equal everywhere (an identical checkpoint, even a constant neuron)."""
    base_layer_max: float
    """Median over the base layer's neurons of their max activation: what "silent" is measured against."""
    target_layer_max: float

    @property
    def max_ratio(self) -> float | None:
        return self.target_max / self.base_max if self.base_max > 0 else None


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two equally long vectors, as scores compute it (workers/simulate/scoring.py);
    None when either is constant or there are fewer than two values."""
    return scoring.pearson(a, b)[0]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| ÷ |a ∪ b| of two id sets (1.0 when both are empty)."""
    first, second = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def _token_values(
    base_acts: np.ndarray, target_acts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The content tokens of records `[R, T]` of both sides (padding left out), flattened."""
    content = np.arange(base_acts.shape[1])[None, :] < lengths[:, None]
    return base_acts[content], target_acts[content]


def token_agreement(
    base: LayerScan, target: LayerScan, neuron: int, lengths: np.ndarray
) -> tuple[float | None, int]:
    """(Pearson, tokens) over the tokens of the samples both scans hold per-token activations for: the
    random records (the same seeded draw when both scans share probe set and seed) and the samples in
    both top sets."""
    base_parts, target_parts = [], []
    if np.array_equal(base.random_ids, target.random_ids) and base.random_ids.size:
        ids = base.random_ids.astype(np.int64)
        b, t = _token_values(base.random_acts(neuron), target.random_acts(neuron), lengths[ids])
        base_parts.append(b)
        target_parts.append(t)
    base_ids, target_ids = base.top_ids[neuron], target.top_ids[neuron]
    common, base_rows, target_rows = np.intersect1d(base_ids, target_ids, return_indices=True)
    common_rows = common >= 0  # -1 marks an empty slot
    if common_rows.any():
        rows_b, rows_t = base_rows[common_rows], target_rows[common_rows]
        b, t = _token_values(
            base.top_acts(neuron)[rows_b], target.top_acts(neuron)[rows_t], lengths[common[common_rows]]
        )
        base_parts.append(b)
        target_parts.append(t)
    if not base_parts:
        return None, 0
    b, t = np.concatenate(base_parts), np.concatenate(target_parts)
    return pearson(b, t), int(b.size)


def agreement(
    base: LayerScan, target: LayerScan, neuron: int, lengths: np.ndarray, top_tolerance: float = 0.25
) -> Agreement:
    """The agreement numbers of one neuron of two layer scans of the same probe set (`lengths`: content
    tokens per sample; `top_tolerance`: the rule's, for :func:`top_overlap`)."""
    base_max, target_max = base.sample_max(neuron), target.sample_max(neuron)
    both = np.isfinite(base_max) & np.isfinite(target_max)  # samples without content tokens are -inf
    r_tokens, n_tokens = token_agreement(base, target, neuron, lengths)
    return Agreement(
        pearson_max=pearson(base_max[both], target_max[both]),
        pearson_tokens=r_tokens,
        n_tokens=n_tokens,
        jaccard_top=jaccard(base.top_ids[neuron], target.top_ids[neuron]),
        top_overlap=top_overlap(base, target, neuron, top_tolerance),
        base_max=float(base.global_max[neuron]),
        target_max=float(target.global_max[neuron]),
        identical=bool(np.array_equal(base_max, target_max)),
        base_layer_max=layer_max(base),
        target_layer_max=layer_max(target),
    )


def layer_max(scan: LayerScan) -> float:
    """The median over a layer's neurons of their max activation (the layer's typical scale)."""
    return float(np.median(scan.global_max))


def silent(value: float, layer: float, rule: VerdictRule) -> bool:
    """A max activation that is ≤ 0, or ≤ `silent_share` of its layer's median max."""
    return value <= 0 or value <= rule.silent_share * layer


def verdict(numbers: Agreement, rule: VerdictRule) -> Verdict:
    """The verdict rule (docs/method.md#comparisons), in order:

    - identical per-sample maxima, or silent on both sides: `unchanged` (silent: max ≤ 0, or ≤
      `silent_share` of the median max activation of its layer on that side);
    - silent on the target only: `dead`; on the base only: `born`;
    - per-sample-max Pearson ≥ `min_pearson` and the top sets' overlap by value (`top_overlap`) ≥
      `min_jaccard` (the same samples drive it, in the same order): `unchanged` when the max ratio is
      within [`ratio_low`, `ratio_high`], else `rescaled`;
    - otherwise `changed`.
    """
    base_silent = silent(numbers.base_max, numbers.base_layer_max, rule)
    target_silent = silent(numbers.target_max, numbers.target_layer_max, rule)
    if numbers.identical or (base_silent and target_silent):
        return "unchanged"
    if target_silent:
        return "dead"
    if base_silent:
        return "born"
    r = numbers.pearson_max
    if r is None or r < rule.min_pearson or numbers.top_overlap < rule.min_jaccard:
        return "changed"
    ratio = numbers.max_ratio
    if ratio is not None and rule.ratio_low <= ratio <= rule.ratio_high:
        return "unchanged"
    return "rescaled"


def _top_by_value(values: np.ndarray, n: int, tolerance: float) -> set[int]:
    """Samples whose max reaches the n-th largest (within `tolerance` of it, relative)."""
    finite = np.isfinite(values)
    if not finite.any() or n <= 0:
        return set()
    k = min(n, int(finite.sum()))
    kth = float(np.partition(values[finite], -k)[-k])
    return set(np.flatnonzero(finite & (values >= kth - tolerance * abs(kth))).tolist())


def top_overlap(base: LayerScan, target: LayerScan, neuron: int, tolerance: float) -> float:
    """Jaccard of the two top sets taken by value: a side's set holds every sample whose max reaches its
    N-th largest per-sample max less `tolerance` of it (N: the base's top-set size), so samples that
    nearly tie at the boundary of a plateau (a concept present in more than N samples, reordered by a
    small change) count on both sides instead of being split at random between them. 1.0 when both are
    empty."""
    n = int((base.top_ids[neuron] >= 0).sum())
    return overlap_by_value(base.sample_max(neuron), target.sample_max(neuron), n, tolerance)


def overlap_by_value(base_max: np.ndarray, target_max: np.ndarray, n: int, tolerance: float) -> float:
    """:func:`top_overlap` over two per-sample maxima (non-finite: samples without content tokens)."""
    first = _top_by_value(np.asarray(base_max, dtype=np.float64), n, tolerance)
    second = _top_by_value(np.asarray(target_max, dtype=np.float64), n, tolerance)
    union = first | second
    return len(first & second) / len(union) if union else 1.0
