"""Scoring simulations (Bills et al. 2023; docs/method.md#simulation-and-scores). Pure functions.

The score is Pearson's r pooled over every held-out token of every scored record (top and random),
not a mean of per-record correlations; also over top records only and random records only, with a
bootstrap 95% interval that resamples records. Undefined correlations (no tokens, constant real
activations or constant predictions) are None with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 1000
"""Bootstrap resamples of the records."""


@dataclass(frozen=True, slots=True)
class Score:
    correlation: float | None
    null_reason: str | None
    correlation_top: float | None
    correlation_random: float | None
    ci95: tuple[float, float] | None
    n_tokens: int
    n_top: int
    n_random: int


def pearson(real: np.ndarray, predicted: np.ndarray) -> tuple[float | None, str | None]:
    """Pearson r of two equal-length vectors; (None, reason) when it is undefined."""
    x = np.asarray(real, dtype=np.float64)
    y = np.asarray(predicted, dtype=np.float64)
    if x.size < 2:
        return None, "fewer than two held-out tokens to correlate"
    x = x - x.mean()
    y = y - y.mean()
    sxx, syy = float(x @ x), float(y @ y)
    if sxx <= 1e-12 * max(1.0, x.size):
        return None, "the real activations are constant over the held-out tokens"
    if syy <= 1e-12 * max(1.0, y.size):
        return None, "the simulated activations are constant over the held-out tokens"
    return float(np.clip((x @ y) / np.sqrt(sxx * syy), -1.0, 1.0)), None


def bootstrap_ci(
    real: Sequence[np.ndarray], predicted: Sequence[np.ndarray], seed: int, n_resamples: int = N_RESAMPLES
) -> tuple[float, float] | None:
    """95% percentile interval of the pooled r, resampling whole records with replacement.

    Vectorised: each record contributes its token sums (n, Σx, Σy, Σx², Σy², Σxy); a resample is a
    count vector over records, so all resamples are one matrix product. Resamples where r is undefined
    are dropped; None when fewer than half remain or there are fewer than two records.
    """
    kept = [i for i, values in enumerate(real) if len(values)]  # empty records add nothing
    real = [real[i] for i in kept]
    predicted = [predicted[i] for i in kept]
    n_records = len(real)
    if n_records < 2:
        return None
    sizes = np.array([len(x) for x in real])
    x = np.concatenate(real).astype(np.float64)
    y = np.concatenate(predicted).astype(np.float64)
    x -= x.mean()  # centring first keeps the sums well conditioned
    y -= y.mean()
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    columns = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    stats = np.add.reduceat(columns, starts, axis=0)
    picks = np.random.default_rng(seed).integers(0, n_records, size=(n_resamples, n_records))
    flat = (np.arange(n_resamples)[:, None] * n_records + picks).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_records).reshape(n_resamples, n_records)
    n, sx, sy, sxx, syy, sxy = (counts @ stats).T
    var_x = n * sxx - sx * sx
    var_y = n * syy - sy * sy
    valid = (var_x > 1e-9 * n * n) & (var_y > 1e-9 * n * n)
    if valid.sum() < n_resamples / 2:
        return None
    r = (n * sxy - sx * sy)[valid] / np.sqrt(var_x[valid] * var_y[valid])
    r = np.sort(np.minimum(np.maximum(r, -1.0), 1.0))
    return _quantile(r, 0.025), _quantile(r, 0.975)


def _quantile(ordered: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method, without its overhead)."""
    position = q * (ordered.size - 1)
    low = int(position)
    high = min(low + 1, ordered.size - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def score_simulation(
    real: Sequence[np.ndarray],
    predicted: Sequence[np.ndarray | None],
    is_top: Sequence[bool],
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> Score:
    """Score one neuron's simulation over its held-out records; records predicted as None are skipped."""
    kept = [i for i, pred in enumerate(predicted) if pred is not None]
    if not kept:
        why = "the simulator could not parse the explanation" if predicted else "no held-out records"
        return Score(None, why, None, None, None, 0, 0, 0)
    xs = [np.asarray(real[i], dtype=np.float64) for i in kept]
    ys = [np.asarray(predicted[i], dtype=np.float64) for i in kept]
    for x, y in zip(xs, ys, strict=True):
        if x.shape != y.shape:
            raise ValueError(f"a record has {x.size} real activations but {y.size} predictions")
    top = [j for j, i in enumerate(kept) if is_top[i]]
    rand = [j for j, i in enumerate(kept) if not is_top[i]]
    correlation, reason = pearson(np.concatenate(xs), np.concatenate(ys))
    return Score(
        correlation=correlation,
        null_reason=reason,
        correlation_top=_subset_r(xs, ys, top),
        correlation_random=_subset_r(xs, ys, rand),
        ci95=bootstrap_ci(xs, ys, seed, n_resamples) if correlation is not None else None,
        n_tokens=int(sum(x.size for x in xs)),
        n_top=len(top),
        n_random=len(rand),
    )


def _subset_r(xs: list[np.ndarray], ys: list[np.ndarray], rows: list[int]) -> float | None:
    if not rows:
        return None
    return pearson(np.concatenate([xs[j] for j in rows]), np.concatenate([ys[j] for j in rows]))[0]
