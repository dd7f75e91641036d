"""Issue 10: the text-model typing rule, the sample-level permutation test, the robust scale and its
top-1 flag, and domain flags that never go to near-silent neurons."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.contract import PipelineOptions
from workers.analysis.density import activation_density
from workers.analysis.domains import MIN_SUPPORT, domain_shares, domain_specific
from workers.analysis.neuron_types import (
    classify_neuron,
    peak_modality_p_values,
    peak_on_image,
    permutation_type,
    poisson_binomial,
)
from workers.analysis.scale import neuron_scale, quantile_of_maxima
from workers.errors import InvalidRequest
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT

T, V = MODALITY_TEXT, MODALITY_IMAGE
OPTIONS = PipelineOptions()


def _one_word_neuron(n: int = 50, length: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A selective text neuron: one token per sample at 6–9, everything else 0."""
    rng = np.random.default_rng(0)
    acts = np.zeros((n, length))
    acts[np.arange(n), rng.integers(0, length, n)] = rng.uniform(6, 9, n)
    return acts, np.full((n, length), T)


def test_a_one_token_text_neuron_is_text_on_a_text_model_and_unknown_under_xu() -> None:
    acts, modality = _one_word_neuron()
    assert classify_neuron(acts, modality, 9.0, OPTIONS).neuron_type == "unknown"  # Xu: ≥ 2 tokens
    result = classify_neuron(acts, modality, 9.0, OPTIONS, text_model=True)
    assert result.neuron_type == "text" and result.high_confidence
    assert result.evidence().method == "text-threshold"
    silent = classify_neuron(acts * 0.1, modality, 9.0, OPTIONS, text_model=True)  # never above 3 of 10
    assert silent.neuron_type == "unknown"


def _vl_samples(n: int, visual: float, text: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples of 8 image tokens then 6 text tokens: `visual` added to every image token, `text` to two
    text tokens, plus uniform 0–1 noise."""
    rng = np.random.default_rng(seed)
    acts = rng.uniform(0, 1, (n, 14))
    acts[:, :8] += visual
    acts[:, 8:10] += text
    return acts, np.array([[V] * 8 + [T] * 6] * n)


def test_the_peak_modality_test_reads_where_each_top_sample_peaks() -> None:
    cases = {"visual": (8.0, 0.0), "text": (0.0, 8.0), "multimodal": (8.0, 7.0)}
    for expected, (visual, text) in cases.items():
        result = permutation_type(*_vl_samples(50, visual, text, seed=2), 9.0, OPTIONS)
        p_visual, p_text, p_two_sided = result.p_values
        assert result.neuron_type == expected, (expected, result.p_values)
        assert p_visual is not None and p_text is not None and p_two_sided is not None
        assert p_visual + p_text == pytest.approx(1.0)  # one randomised draw splits P(K = k)
        assert result.evidence().method == "permutation"
        if expected == "text":
            assert p_text < 1e-9 and result.high_confidence  # 8/14 image tokens, yet no peak on one
        else:  # every peak on an image token (the multimodal neuron's visual peak is higher)
            assert p_visual < 1e-3 and p_two_sided == pytest.approx(2 * p_visual)
    # Strong on every token: multimodal by the thresholds, peaks where chance puts them.
    acts, modality = _vl_samples(50, 0.0, 0.0, seed=3)
    even = permutation_type(acts + 8.0, modality, 9.0, OPTIONS)
    assert even.neuron_type == "multimodal" and even.p_values[2] is not None and even.p_values[2] > 0.01
    # One sample in five lights up its image tokens: visual by the thresholds, not beyond chance.
    acts, modality = _vl_samples(50, 0.0, 0.0, seed=4)
    acts[:, :8] += 8.0 * (np.arange(50) % 5 == 0)[:, None]
    half = permutation_type(acts, modality, 9.0, OPTIONS)
    assert half.neuron_type == "visual" and not half.high_confidence  # p of the preference ≥ 0.01
    assert half.p_values[0] is not None and half.p_values[0] > 0.01


def test_the_peak_count_is_poisson_binomial_and_ties_are_drawn() -> None:
    q = np.array([0.2, 0.5, 0.9, 1.0, 0.0])
    brute = np.zeros(6)
    for outcome in itertools.product((0, 1), repeat=5):
        brute[sum(outcome)] += np.prod([qi if o else 1 - qi for qi, o in zip(q, outcome, strict=True)])
    assert np.allclose(poisson_binomial(q), brute)
    # All-equal samples: the peak is a draw among all tokens, image with probability 8/14.
    flat, modality = np.ones((4000, 14)), np.array([[V] * 8 + [T] * 6] * 4000)
    share = peak_on_image(flat, modality, np.random.default_rng(0)).mean()
    assert abs(share - 8 / 14) < 0.03
    # Samples with one modality only carry no information: nothing to test.
    text_only = (np.ones((50, 6)), np.full((50, 6), T))
    assert peak_modality_p_values(*text_only, (0, 0)) == (None, None, None)


def test_permutation_typing_is_refused_on_a_text_model() -> None:
    acts, modality = _one_word_neuron()
    with pytest.raises(InvalidRequest, match="text-only model"):
        permutation_type(acts, modality, 9.0, OPTIONS, text_model=True)


def test_quantile_scale_ignores_one_outlier_and_the_flag_names_it() -> None:
    top_max = np.array([50.0, *np.linspace(10.0, 5.0, 49)])  # one sample 5× the rest
    flagged = neuron_scale(top_max, 50.0, 4096, "quantile", 0.999)
    assert flagged.top1_dominates and flagged.top1_ratio is not None and flagged.top1_ratio > 4
    assert 9.0 < flagged.value < 10.0  # ≈ the 5th largest maximum, not the outlier
    assert neuron_scale(top_max, 50.0, 4096, "global-max", 0.999).value == 50.0
    even = neuron_scale(np.linspace(10.0, 8.0, 50), 10.0, 4096, "quantile", 0.999)
    assert not even.top1_dominates
    maxima = np.random.default_rng(0).uniform(0, 1, 4096)
    ordered = np.sort(maxima)[::-1][:50]
    assert abs(quantile_of_maxima(ordered, 4096, 0.999) - np.quantile(maxima, 0.999)) < 1e-12


def test_near_silent_neurons_are_never_domain_specific() -> None:
    rng = np.random.default_rng(0)
    tokens = np.array([5000, 5000, 5000, 5000])
    positive = rng.integers(1000, 1500, size=(300, 4))
    positive[10] = [0, 0, 1, 0]  # one positive token in one domain: entropy 0
    positive[11] = [0, 2, 0, 0]
    positive[13:16] = [3, 0, 0, 0]  # more near-silent neurons than the layer's 1% of slots (3)
    positive[20] = [0, 0, 0, 4000]  # a real domain neuron (after the near-silent ones)
    specific = domain_specific(domain_shares(positive, tokens), ["a", "b", "c", "d"], positive)
    assert specific[10] == specific[11] == specific[13] == [] and specific[20] == ["d"]
    # A silent layer: the 95th percentile is tiny, the support bar still holds.
    quiet = np.zeros((300, 4), dtype=np.int64)
    quiet[5] = [0, 0, MIN_SUPPORT - 1, 0]
    assert domain_specific(domain_shares(quiet, tokens), ["a", "b", "c", "d"], quiet)[5] == []


def _maxima(rng: np.random.Generator, background: np.ndarray, concept: list[float]) -> np.ndarray:
    """Every sample's max: the background's, with the first len(concept) samples replaced."""
    maxima = background.copy()
    maxima[: len(concept)] = concept
    return maxima[rng.permutation(maxima.size)]


def test_a_rare_concept_over_a_weak_background_sets_the_scale() -> None:
    rng = np.random.default_rng(0)
    background = rng.uniform(0.3, 0.5, 4096)  # a weak response in every sample
    for k in range(1, 5):
        concept = list(rng.uniform(4.0, 6.0, k))
        maxima = _maxima(rng, background, concept)
        top_max, typical = np.sort(maxima)[::-1][:50], float(np.median(maxima[:50]))
        plain = neuron_scale(top_max, float(maxima.max()), 4096, "quantile", 0.999)
        assert plain.value < 0.5 and plain.concept_samples is None  # the quantile sits in the background
        scale = neuron_scale(top_max, float(maxima.max()), 4096, "quantile", 0.999, typical)
        assert scale.concept_samples == k and scale.value == pytest.approx(min(concept)), (k, scale)
        assert "rare concept" in scale.reason
        assert 10 * top_max[k] / scale.value <= 3.0  # the best background sample shades ≤ 3 of 10
    # Below the gap a concept of its own (10% of samples at 5, far above the typical 0.4): quantile stays.
    question = background.copy()
    question[:400] = 5.0
    maxima = _maxima(rng, question, [30.0])
    top_max = np.sort(maxima)[::-1][:50]
    kept = neuron_scale(top_max, 30.0, 4096, "quantile", 0.999, float(np.median(maxima)))
    assert kept.concept_samples is None and kept.value == pytest.approx(5.0) and kept.top1_dominates
    # A typical sample at or below 0 says nothing about a background level: quantile stays.
    assert neuron_scale(top_max, 30.0, 4096, "quantile", 0.999, -0.1).concept_samples is None


def test_density_is_exact_for_sparse_neurons_and_estimated_for_dense_ones() -> None:
    lengths = np.full(50, 10)
    top_acts = np.zeros((50, 10))
    top_acts[:8, :2] = 5.0  # 8 samples, 16 tokens above 3 of 10 (scale 10 → raw 3)
    top_max = top_acts.max(axis=1)
    random = (np.zeros((20, 10)), np.full(20, 10))
    sparse = activation_density((top_max, top_acts, lengths), random, 10.0, 3.0, (4000, 40000))
    assert sparse.exact and sparse.n_samples_above == 8 and sparse.threshold_raw == 3.0
    assert sparse.sample_fraction == 8 / 4000 and sparse.token_fraction == 16 / 40000
    dense_top = np.full((50, 10), 5.0)
    random_acts = np.zeros((20, 10))
    random_acts[:5, 0] = 5.0  # 5 of 20 random records above, one token each
    dense = activation_density(
        (dense_top.max(axis=1), dense_top, lengths), (random_acts, np.full(20, 10)), 10.0, 3.0, (4000, 40000)
    )
    assert not dense.exact and dense.n_samples_above is None and dense.n_records == 20
    assert dense.sample_fraction == 0.25 and dense.token_fraction == 5 / 200
    silent = activation_density((top_max, top_acts, lengths), random, 0.0, 3.0, (4000, 40000))
    assert silent.exact and silent.sample_fraction == silent.token_fraction == 0.0
