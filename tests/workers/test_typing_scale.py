"""Issue 10: the text-model typing rule, the sample-level permutation test, the robust scale and its
top-1 flag, and domain flags that never go to near-silent neurons."""

from __future__ import annotations

import numpy as np

from service.contract import PipelineOptions
from workers.analysis.domains import MIN_SUPPORT, domain_shares, domain_specific
from workers.analysis.neuron_types import classify_neuron, permutation_type
from workers.analysis.scale import neuron_scale, quantile_of_maxima
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
    """n samples of 8 image tokens then 6 text tokens; peaks of the given height plus noise."""
    rng = np.random.default_rng(seed)
    acts = rng.uniform(0, 1, (n, 14))
    acts[:, rng.integers(0, 8)] += visual
    acts[:, 8 + rng.integers(0, 6)] += text
    return acts, np.array([[V] * 8 + [T] * 6] * n)


def test_permutation_test_types_by_which_modalities_beat_random_samples() -> None:
    random = _vl_samples(50, 0.0, 0.0, seed=1)
    cases = {"visual": (8.0, 0.0), "text": (0.0, 8.0), "multimodal": (8.0, 8.0), "unknown": (0.0, 0.0)}
    for expected, (visual, text) in cases.items():
        top = _vl_samples(50, visual, text, seed=2)
        result = permutation_type(top, random, 9.0, OPTIONS)
        assert result.neuron_type == expected, (expected, result.p_values)
        evidence = result.evidence()
        assert evidence.method == "permutation" and evidence.p_value_text is not None
    # Strong everywhere (random records too): above the thresholds but not above random → unknown.
    everywhere = permutation_type(_vl_samples(50, 8.0, 8.0, 2), _vl_samples(50, 8.0, 8.0, 3), 9.0, OPTIONS)
    assert everywhere.neuron_type == "unknown", everywhere.p_values
    both = permutation_type(_vl_samples(50, 8.0, 8.0, 2), random, 9.0, OPTIONS)
    assert both.p_values[2] is not None and both.p_values[2] > 0.01  # visual ≈ text within samples
    visual = permutation_type(_vl_samples(50, 8.0, 0.0, 2), random, 9.0, OPTIONS)
    assert visual.p_values[0] is not None and visual.p_values[0] < 0.01 and visual.p_values[2] < 0.01


def test_permutation_test_on_a_text_model_has_no_visual_p_value() -> None:
    acts, modality = _one_word_neuron()
    random = (np.zeros((50, 12)), np.full((50, 12), T))
    result = permutation_type((acts, modality), random, 9.0, OPTIONS, text_model=True)
    assert result.neuron_type == "text" and result.p_values[0] is None and result.p_values[2] is None


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
