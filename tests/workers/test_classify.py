"""Neuron type rules (Xu et al. 2025) on hand-built activations and modality masks."""

from __future__ import annotations

import numpy as np
import pytest

from service.contract import PipelineOptions
from workers.analysis.neuron_types import classify_neuron, classify_samples
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_PAD, MODALITY_TEXT, normalise

T, V, P = MODALITY_TEXT, MODALITY_IMAGE, MODALITY_PAD
OPTIONS = PipelineOptions()  # visual: ≥4 tokens > 2; text: ≥2 tokens > 3; high confidence > 0.8


def test_normalise_scales_to_ten_and_clips() -> None:
    acts = np.array([-1.0, 0.0, 1.0, 2.0, 4.0, 5.0])
    assert normalise(acts, 4.0).tolist() == [0.0, 0.0, 2.5, 5.0, 10.0, 10.0]
    assert normalise(acts, 0.0).tolist() == [0.0] * 6  # never-positive neuron: all zero
    assert normalise(acts, -1.0).tolist() == [0.0] * 6


def test_sample_types_follow_the_thresholds() -> None:
    # max_activation 10 makes normalised = raw.
    acts = np.array(
        [
            [3.1, 3.1, 3.1, 3.1, 0.0, 0.0],  # 4 image tokens > 2 → visual
            [3.1, 3.1, 3.1, 0.0, 3.5, 3.5],  # only 3 image tokens; 2 text > 3 → text
            [2.5, 2.5, 2.5, 2.5, 3.5, 3.5],  # both → multimodal
            [2.0, 2.0, 2.0, 2.0, 3.0, 9.0],  # thresholds are strict (> 2, > 3): 1 text hit → unknown
            [0.0, 0.0, 0.0, 0.0, 9.0, 9.0],  # text tokens behind padding do not count → unknown
        ]
    )
    modality = np.array(
        [[V, V, V, V, T, T], [V, V, V, V, T, T], [V, V, V, V, T, T], [V, V, V, V, T, T], [V, V, V, V, P, P]]
    )
    kinds = classify_samples(acts, modality, 10.0, OPTIONS)
    assert kinds.tolist() == ["visual", "text", "multimodal", "unknown", "unknown"]


def test_neuron_type_is_the_majority_with_confidence() -> None:
    acts = np.zeros((10, 4))
    modality = np.full((10, 4), T)
    acts[:9, :2] = 8.0  # 9 of 10 samples text-activated
    result = classify_neuron(acts, modality, 8.0, OPTIONS)
    assert result.neuron_type == "text"
    assert result.fractions == {"visual": 0.0, "text": 0.9, "multimodal": 0.0, "unknown": pytest.approx(0.1)}
    assert result.high_confidence  # 0.9 > 0.8
    evidence = result.evidence()
    assert (evidence.p_text, evidence.p_unknown, evidence.n_samples) == (0.9, pytest.approx(0.1), 10)

    assert evidence.n_responding == 9
    # Confidence is the winner's share of the RESPONDING samples: 6 text and 2 visual of 8 → 0.75.
    mixed, mixed_modality = np.zeros((10, 4)), np.full((10, 4), T)
    mixed[:6, :2] = 8.0
    mixed[6:8], mixed_modality[6:8] = 8.0, V
    result = classify_neuron(mixed, mixed_modality, 8.0, OPTIONS)
    assert result.neuron_type == "text" and result.n_responding == 8 and not result.high_confidence


def test_a_neuron_is_unknown_only_when_no_top_sample_responds() -> None:
    acts, modality = np.zeros((50, 6)), np.full((50, 6), T)
    acts[:2, 1:3] = 8.0  # a rare concept: 2 of 50 top samples respond, the rest are silent
    result = classify_neuron(acts, modality, 8.0, OPTIONS)
    assert result.neuron_type == "text" and result.n_responding == 2 and result.high_confidence
    assert result.fractions["text"] == 0.04 and result.fractions["unknown"] == 0.96  # Xu's shares
    silent = classify_neuron(acts * 0.2, modality, 8.0, OPTIONS)  # nothing above 3 of 10
    assert silent.neuron_type == "unknown" and silent.n_responding == 0 and not silent.high_confidence


def test_text_models_give_text_or_unknown_and_ties_follow_the_documented_order() -> None:
    acts = np.zeros((4, 3))
    acts[:2, :] = 5.0
    text_only = np.full((4, 3), T)
    result = classify_neuron(acts, text_only, 5.0, OPTIONS)
    assert result.fractions["text"] == result.fractions["unknown"] == 0.5
    assert result.neuron_type == "text"  # the responding samples decide
    wide = np.full((4, 5), 5.0)
    wide_modality = np.array([[V, V, V, V, P], [V, V, V, V, P], [T, T, P, P, P], [T, T, P, P, P]])
    tie = classify_neuron(wide, wide_modality, 5.0, OPTIONS)
    assert tie.fractions["visual"] == tie.fractions["text"] == 0.5
    assert tie.neuron_type == "visual"  # tie: visual comes before text


def test_settings_change_the_rules() -> None:
    acts = np.array([[5.0, 0.0, 0.0]])
    modality = np.full((1, 3), T)
    assert classify_samples(acts, modality, 5.0, OPTIONS).tolist() == ["unknown"]
    one_token = PipelineOptions(text_min_tokens=1)
    assert classify_samples(acts, modality, 5.0, one_token).tolist() == ["text"]
    strict = PipelineOptions(text_min_tokens=1, text_threshold=10.0)
    assert classify_samples(acts, modality, 5.0, strict).tolist() == ["unknown"]
