"""Scoring: pooled Pearson against hand-computed values, null cases, the bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.simulate.scoring import bootstrap_ci, pearson, score_simulation


def _hand_pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def test_pearson_matches_a_hand_computation() -> None:
    # x = [1, 2, 3, 4], y = [2, 1, 4, 3]: means 2.5; Σdxdy = 3, Σdx² = Σdy² = 5 → r = 0.6.
    r, reason = pearson(np.array([1.0, 2, 3, 4]), np.array([2.0, 1, 4, 3]))
    assert reason is None and r == pytest.approx(0.6)


def test_score_is_pooled_over_tokens_not_a_mean_of_records() -> None:
    real = [np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0])]
    predicted = [np.array([0.0, 2.0, 1.0]), np.array([9.0, 10.0])]
    score = score_simulation(real, predicted, [True, False], seed=0)
    pooled = _hand_pearson([0, 1, 2, 5, 6], [0, 2, 1, 9, 10])
    per_record_mean = (_hand_pearson([0, 1, 2], [0, 2, 1]) + _hand_pearson([5, 6], [9, 10])) / 2
    assert score.correlation == pytest.approx(pooled)
    # By hand: means 2.8 and 4.4; Σdxdy = 47.4, Σdx² = 26.8, Σdy² = 89.2 → r = 47.4/√2390.56 ≈ 0.96946.
    assert pooled == pytest.approx(0.96946, abs=1e-5)
    assert per_record_mean == pytest.approx(0.75)
    assert abs(score.correlation - per_record_mean) > 0.1
    assert score.correlation_top == pytest.approx(0.5)  # [0,1,2] vs [0,2,1]
    assert score.correlation_random == pytest.approx(1.0)
    assert (score.n_tokens, score.n_top, score.n_random) == (5, 1, 1)


@pytest.mark.parametrize(
    ("real", "predicted", "reason"),
    [
        ([np.zeros(4), np.zeros(3)], [np.arange(4.0), np.ones(3)], "real activations are constant"),
        ([np.arange(4.0), np.ones(3)], [np.zeros(4), np.zeros(3)], "simulated activations are constant"),
        ([np.array([1.0])], [np.array([1.0])], "fewer than two"),
    ],
)
def test_undefined_correlations_are_null_with_a_reason(
    real: list[np.ndarray], predicted: list[np.ndarray], reason: str
) -> None:
    score = score_simulation(real, predicted, [True] * len(real), seed=0)
    assert score.correlation is None and score.ci95 is None
    assert reason in (score.null_reason or "")


def test_unparsed_records_are_left_out_never_scored_as_zero() -> None:
    real = [np.array([0.0, 4.0]), np.array([1.0, 3.0]), np.array([0.0, 9.0])]
    predicted: list[np.ndarray | None] = [np.array([0.0, 10.0]), None, np.array([1.0, 8.0])]
    score = score_simulation(real, predicted, [True, True, False], seed=0)
    assert score.correlation == pytest.approx(_hand_pearson([0, 4, 0, 9], [0, 10, 1, 8]))
    assert (score.n_top, score.n_random, score.n_tokens) == (1, 1, 4)
    nothing = score_simulation(real, [None, None, None], [True, True, False], seed=0)
    assert nothing.correlation is None
    assert nothing.null_reason == "the simulator could not parse the explanation"


def test_bootstrap_interval_contains_the_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    real = [rng.normal(size=12) for _ in range(20)]
    predicted = [x + rng.normal(scale=0.8, size=x.size) for x in real]
    score = score_simulation(real, predicted, [i < 10 for i in range(20)], seed=11)
    assert score.correlation is not None and score.ci95 is not None
    low, high = score.ci95
    assert -1 <= low < score.correlation < high <= 1
    assert bootstrap_ci(real, predicted, seed=11) == score.ci95
    assert bootstrap_ci(real, predicted, seed=12) != score.ci95


def test_bootstrap_matches_a_direct_resample() -> None:
    rng = np.random.default_rng(5)
    real = [rng.normal(size=rng.integers(3, 9)) for _ in range(8)]
    predicted = [x * 0.5 + rng.normal(size=x.size) for x in real]
    low, high = bootstrap_ci(real, predicted, seed=2, n_resamples=400) or (0.0, 0.0)
    # The same resamples done record by record with plain concatenation.
    picks = np.random.default_rng(2).integers(0, 8, size=(400, 8))
    direct = []
    for row in picks:
        x = np.concatenate([real[i] for i in row])
        y = np.concatenate([predicted[i] for i in row])
        direct.append(np.corrcoef(x, y)[0, 1])
    expected = np.percentile(direct, [2.5, 97.5])
    assert (low, high) == pytest.approx(tuple(expected), abs=1e-9)
