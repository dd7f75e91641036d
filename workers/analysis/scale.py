"""The 0–10 scale of a neuron (docs/method.md#scale): what raw activation maps to 10. Pure functions.

`global-max` is the largest activation over the probe set (Xu et al. 2025; Bills et al. 2023 use the max
over their records). One outlier sample then squashes every other sample to 0–1 on real text, so the
default is `quantile`: the q-quantile (numpy's linear interpolation) of the probe set's per-sample maxima.
The scan keeps the top-N per-sample maxima, highest first, which hold every order statistic the quantile
needs while (1 − q)·(n − 1) < N − 1; past that the N-th maximum is used (a lower bound, never reached with
the bundled sets: q = 0.999 needs rank 4 of 4,096 samples). The default q was measured on planted neurons
(docs/method.md#scale, bench/bench_quality.py).

A rare concept (in k ≤ DOMINANCE_RANK samples) puts the quantile in the background: when the top k
samples stand above a gap (consecutive ratio > DOMINANCE_RATIO) and the first sample below it is
background (its max at most BACKGROUND_FACTOR × the typical sample's max, the median of the random
records' per-sample maxima, which must be positive), the scale is the lowest of those k samples' maxima:
every concept sample reaches 10 and the background stays below 10 ÷ the gap ratio. A gap above a concept
of its own (far above the typical sample, like the planted one-outlier neuron's "?") keeps the quantile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DOMINANCE_RANK = 4
"""Rank (0-based) the top-1 sample's max is compared with: the 5th sample; also the most samples a rare
concept may have for the concept scale."""
DOMINANCE_RATIO = 2.0
"""Top-1 ÷ 5th sample max above which one sample dominates the global max; also the smallest gap ratio
between a rare concept's samples and the background."""
BACKGROUND_FACTOR = 2.0
"""A sample below the gap is background when its max is at most this many times the typical sample's."""


@dataclass(frozen=True, slots=True)
class Scale:
    method: str
    quantile: float | None
    value: float
    """Raw activation that maps to 10."""
    top1_ratio: float | None
    top1_dominates: bool
    reason: str = ""
    """Which value maps to 10 and why (one sentence)."""
    concept_samples: int | None = None
    """k when the rare-concept rule set the scale."""


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


def typical_max(acts: np.ndarray, lengths: np.ndarray) -> float | None:
    """Median per-sample max of records `acts` [R, T] over each one's first `lengths` tokens."""
    if acts.shape[0] == 0:
        return None
    content = np.arange(acts.shape[1])[None, :] < np.asarray(lengths)[:, None]
    maxima = np.where(content, acts, -np.inf).max(axis=1)
    maxima = maxima[np.isfinite(maxima)]
    return float(np.median(maxima)) if maxima.size else None


def rare_concept(top_max: np.ndarray, typical: float | None) -> tuple[int, float] | None:
    """(k, gap ratio) when the top k ≤ DOMINANCE_RANK samples stand above a gap over background."""
    if typical is None or not typical > 0 or len(top_max) <= DOMINANCE_RANK:
        return None
    ordered = np.asarray(top_max[: DOMINANCE_RANK + 1], dtype=np.float64)
    if not ordered[DOMINANCE_RANK] > 0:
        return None
    ratios = ordered[:-1] / ordered[1:]
    k = int(np.argmax(ratios)) + 1  # the largest consecutive gap, below sample k - 1
    ratio = float(ratios[k - 1])
    if ratio > DOMINANCE_RATIO and ordered[k] <= BACKGROUND_FACTOR * typical:
        return k, ratio
    return None


def neuron_scale(
    top_max: np.ndarray,
    global_max: float,
    n_samples: int,
    method: str,
    quantile: float,
    typical: float | None = None,
) -> Scale:
    """The neuron's scale; `quantile` falls back to the global max when the quantile is not positive and
    moves to a rare concept's level when the quantile sits in the background (`typical`: the median
    per-sample max of the random records)."""
    ratio = top1_ratio(top_max)
    dominates = ratio is not None and ratio > DOMINANCE_RATIO
    if method == "global-max":
        reason = "global-max: the largest activation over the probe set (requested)"
        return Scale("global-max", None, float(global_max), ratio, dominates, reason)
    value = min(quantile_of_maxima(top_max, n_samples, quantile), float(global_max))
    if not value > 0:
        reason = (
            f"quantile: the {quantile:g} quantile of the per-sample maxima is not positive, so the global max"
        )
        return Scale("quantile", quantile, float(global_max), ratio, dominates, reason)
    concept = rare_concept(top_max, typical)
    if concept is not None and float(top_max[concept[0] - 1]) > value:
        k, gap = concept
        reason = (
            f"quantile: the {quantile:g} quantile sat in the background, so a rare concept sets the scale: "
            f"the top {k} sample(s) stand {gap:.1f}× above the next one, whose max is background level "
            f"(≤ {BACKGROUND_FACTOR:g}× the median sample's max); the lowest of their maxima maps to 10"
        )
        return Scale("quantile", quantile, float(top_max[k - 1]), ratio, dominates, reason, k)
    reason = (
        f"quantile: the {quantile:g} quantile of the probe set's per-sample maxima, so one outlier sample "
        "does not squash the rest"
    )
    return Scale("quantile", quantile, value, ratio, dominates, reason)
