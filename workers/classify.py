"""Neuron type from its top samples (Xu et al. 2025; DESIGN §4.4). Pure functions over arrays.

Each top sample is visual-activated when at least `visual_min_tokens` image tokens have a normalised
activation above `visual_threshold`, text-activated when at least `text_min_tokens` text tokens exceed
`text_threshold`; both → multimodal, neither → unknown. The neuron's type is the most frequent sample
type; ties go to the first of TIE_ORDER (the type backed by more modalities wins, unknown loses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.contract import NeuronType, PipelineOptions, TypeEvidence
from workers.records import MODALITY_IMAGE, MODALITY_TEXT, normalise

TIE_ORDER: tuple[NeuronType, ...] = ("multimodal", "visual", "text", "unknown")
"""Order that breaks ties between equally frequent sample types."""


@dataclass(frozen=True, slots=True)
class NeuronTypeResult:
    neuron_type: NeuronType
    fractions: dict[NeuronType, float]
    """Share of top samples of each sample type; they sum to 1 (all 0 without samples)."""
    n_samples: int
    high_confidence: bool

    def evidence(self) -> TypeEvidence:
        return TypeEvidence(
            p_visual=self.fractions["visual"],
            p_text=self.fractions["text"],
            p_multimodal=self.fractions["multimodal"],
            p_unknown=self.fractions["unknown"],
            n_samples=self.n_samples,
            high_confidence=self.high_confidence,
        )


def classify_samples(
    acts: np.ndarray, modality: np.ndarray, max_activation: float, options: PipelineOptions
) -> np.ndarray:
    """Sample type per row of `acts` [samples, tokens] (raw), with `modality` codes of the same shape."""
    norm = normalise(acts, max_activation)
    visual_hits = ((norm > options.visual_threshold) & (modality == MODALITY_IMAGE)).sum(axis=1)
    text_hits = ((norm > options.text_threshold) & (modality == MODALITY_TEXT)).sum(axis=1)
    is_visual = visual_hits >= options.visual_min_tokens
    is_text = text_hits >= options.text_min_tokens
    kinds = np.full(acts.shape[0], "unknown", dtype=object)
    kinds[is_visual & ~is_text] = "visual"
    kinds[is_text & ~is_visual] = "text"
    kinds[is_visual & is_text] = "multimodal"
    return kinds


def classify_neuron(
    acts: np.ndarray, modality: np.ndarray, max_activation: float, options: PipelineOptions
) -> NeuronTypeResult:
    """The neuron's type and evidence from its top samples' per-token activations."""
    kinds = classify_samples(acts, modality, max_activation, options)
    n = int(kinds.shape[0])
    fractions: dict[NeuronType, float] = {
        kind: (float((kinds == kind).sum()) / n if n else 0.0)
        for kind in ("visual", "text", "multimodal", "unknown")
    }
    if n == 0:
        return NeuronTypeResult("unknown", fractions, 0, False)
    winner = max(TIE_ORDER, key=lambda kind: (fractions[kind], -TIE_ORDER.index(kind)))
    return NeuronTypeResult(winner, fractions, n, fractions[winner] > options.high_confidence)
