"""The 0–10 scale of a neuron (docs/method.md#scale): what raw activation maps to 10. Pure functions.

`global-max` is the largest activation over the probe set (Xu et al. 2025; Bills et al. 2023 use the max
over their records). One outlier sample then squashes every other sample to 0–1 on real text, so the
default is `quantile`: the q-quantile (numpy's linear interpolation) of the probe set's per-sample maxima.
The scan keeps the top-N per-sample maxima, highest first, which hold every order statistic the quantile
needs while (1 − q)·(n − 1) < N − 1; past that the N-th maximum is used (a lower bound, never reached with
the bundled sets: q = 0.999 needs rank 4 of 4,096 samples). The default q was measured on planted neurons
(docs/method.md#scale, bench/bench_quality.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DOMINANCE_RANK = 4
"""Rank (0-based) the top-1 sample's max is compared with: the 5th sample."""
DOMINANCE_RATIO = 2.0
"""Top-1 ÷ 5th sample max above which one sample dominates the global max."""


@dataclass(frozen=True, slots=True)
class Scale:
    method: str
    quantile: float | None
    value: float
    """Raw activation that maps to 10."""
    top1_ratio: float | None
    top1_dominates: bool


def quantile_of_maxima(top_max: np.ndarray, n_samples: int, quantile: float) -> float:
    """q-quantile of all n_samples per-sample maxima from the top ones (`top_max`, descending)."""
    ordered = np.asarray(top_max, dtype=np.float64)
    if ordered.size == 0:
        return 0.0
    rank = (1.0 - quantile) * max(n_samples - 1, 0)  # position counted from the largest
    low = min(int(math.floor(rank)), ordered.size - 1)
    high = min(low + 1, ordered.size - 1)
    fraction = rank - math.floor(rank) if high > low else 0.0
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


def top1_ratio(top_max: np.ndarray) -> float | None:
    """Top-1 max ÷ the DOMINANCE_RANK-th; None with too few samples or a non-positive denominator."""
    if len(top_max) <= DOMINANCE_RANK or not float(top_max[DOMINANCE_RANK]) > 0:
        return None
    return float(top_max[0]) / float(top_max[DOMINANCE_RANK])


def neuron_scale(
    top_max: np.ndarray, global_max: float, n_samples: int, method: str, quantile: float
) -> Scale:
    """The neuron's scale; `quantile` falls back to the global max when the quantile is not positive."""
    ratio = top1_ratio(top_max)
    dominates = ratio is not None and ratio > DOMINANCE_RATIO
    if method == "global-max":
        return Scale("global-max", None, float(global_max), ratio, dominates)
    value = min(quantile_of_maxima(top_max, n_samples, quantile), float(global_max))
    if not value > 0:
        value = float(global_max)
    return Scale("quantile", quantile, value, ratio, dominates)
