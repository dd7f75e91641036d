"""Neuron type from its top samples (docs/method.md#neuron-types). Pure functions over arrays.

Threshold method. Vision-language models follow Xu et al. 2025: each top sample is visual-activated when
at least `visual_min_tokens` image tokens have a normalised activation above `visual_threshold`,
text-activated when at least `text_min_tokens` text tokens exceed `text_threshold`; both → multimodal,
neither → unknown. Text-only models use `text_model_min_tokens` (default 1) instead of `text_min_tokens`:
Xu et al.'s "≥ 2 tokens" is meant for a VLM's long image descriptions, while a selective text neuron of
a text model fires on one word per sentence, so under it such neurons would be `unknown`. On a text model
`unknown` thus means the neuron does not respond (no token above the threshold). The neuron's type is the
most frequent sample type; ties go to the first of TIE_ORDER.

Permutation method (a criticism of fixed thresholds by a public re-implementation of Xu et al., which
shuffles single tokens; tokens of one sample are correlated, so here whole samples are the unit).
Per sample and modality the statistic is the sample's peak normalised activation over that modality's
tokens. (1) A modality is active when the top samples' mean peak exceeds the random records' (one-sided
permutation test: top/random labels permuted over samples, `permutations` draws, p = (1 + #≥)/(1 + draws))
with p < `type_alpha`, and the top samples' mean peak is at least that modality's threshold. Visual only
→ visual, text only → text, both → multimodal (both modalities active), neither → unknown. (2) For
information, a two-sided sign-flip test of visual − text peak within the top samples (the two labels of
a sample swapped together) gives `p_value_difference`. `high_confidence` is true when every p-value is
decisive (below `type_alpha` or above 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.contract import NeuronType, PipelineOptions, TypeEvidence
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT, normalise

TIE_ORDER: tuple[NeuronType, ...] = ("multimodal", "visual", "text", "unknown")
"""Order that breaks ties between equally frequent sample types."""


@dataclass(frozen=True, slots=True)
class NeuronTypeResult:
    neuron_type: NeuronType
    fractions: dict[NeuronType, float]
    """Share of top samples of each sample type; they sum to 1 (all 0 without samples)."""
    n_samples: int
    high_confidence: bool
    method: str = "xu-threshold"
    p_values: tuple[float | None, float | None, float | None] = (None, None, None)
    """Permutation method: (visual active, text active, visual vs text); None where not computed."""

    def evidence(self) -> TypeEvidence:
        return TypeEvidence(
            p_visual=self.fractions["visual"],
            p_text=self.fractions["text"],
            p_multimodal=self.fractions["multimodal"],
            p_unknown=self.fractions["unknown"],
            n_samples=self.n_samples,
            high_confidence=self.high_confidence,
            method=self.method,  # type: ignore[arg-type]
            p_value_visual=self.p_values[0],
            p_value_text=self.p_values[1],
            p_value_difference=self.p_values[2],
        )


def classify_samples(
    acts: np.ndarray,
    modality: np.ndarray,
    max_activation: float,
    options: PipelineOptions,
    text_model: bool = False,
) -> np.ndarray:
    """Sample type per row of `acts` [samples, tokens] (raw), with `modality` codes of the same shape."""
    norm = normalise(acts, max_activation)
    visual_hits = ((norm > options.visual_threshold) & (modality == MODALITY_IMAGE)).sum(axis=1)
    text_hits = ((norm > options.text_threshold) & (modality == MODALITY_TEXT)).sum(axis=1)
    is_visual = visual_hits >= options.visual_min_tokens
    is_text = text_hits >= (options.text_model_min_tokens if text_model else options.text_min_tokens)
    kinds = np.full(acts.shape[0], "unknown", dtype=object)
    kinds[is_visual & ~is_text] = "visual"
    kinds[is_text & ~is_visual] = "text"
    kinds[is_visual & is_text] = "multimodal"
    return kinds


def classify_neuron(
    acts: np.ndarray,
    modality: np.ndarray,
    max_activation: float,
    options: PipelineOptions,
    text_model: bool = False,
) -> NeuronTypeResult:
    """The neuron's type and evidence from its top samples' per-token activations (threshold method)."""
    kinds = classify_samples(acts, modality, max_activation, options, text_model)
    n = int(kinds.shape[0])
    fractions: dict[NeuronType, float] = {
        kind: (float((kinds == kind).sum()) / n if n else 0.0)
        for kind in ("visual", "text", "multimodal", "unknown")
    }
    method = "text-threshold" if text_model else "xu-threshold"
    if n == 0:
        return NeuronTypeResult("unknown", fractions, 0, False, method)
    winner = max(TIE_ORDER, key=lambda kind: (fractions[kind], -TIE_ORDER.index(kind)))
    return NeuronTypeResult(winner, fractions, n, fractions[winner] > options.high_confidence, method)


def modality_peaks(acts: np.ndarray, modality: np.ndarray, max_activation: float, code: int) -> np.ndarray:
    """Peak normalised activation per sample over tokens of modality `code`; NaN where it has none."""
    norm = normalise(acts, max_activation)
    masked = np.where(modality == code, norm, -np.inf)
    peaks = masked.max(axis=1) if masked.shape[1] else np.full(masked.shape[0], -np.inf)
    return np.where(np.isfinite(peaks), peaks, np.nan)


def greater_p(top: np.ndarray, rest: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """One-sided p that mean(top) > mean(rest), permuting the top/rest labels over samples."""
    pooled = np.concatenate([top, rest])
    observed = top.mean() - rest.mean()
    draws = np.argsort(rng.random((permutations, pooled.size)), axis=1)[:, : top.size]
    picked = pooled[draws]
    diffs = picked.mean(axis=1) - (pooled.sum() - picked.sum(axis=1)) / rest.size
    return float((1 + np.count_nonzero(diffs >= observed - 1e-12)) / (1 + permutations))


def sign_flip_p(differences: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Two-sided p that the mean paired difference is 0, flipping each sample's sign (labels swapped)."""
    observed = abs(differences.mean())
    signs = rng.choice((-1.0, 1.0), size=(permutations, differences.size))
    flipped = np.abs((signs * differences).mean(axis=1))
    return float((1 + np.count_nonzero(flipped >= observed - 1e-12)) / (1 + permutations))


def permutation_type(
    top: tuple[np.ndarray, np.ndarray],
    random: tuple[np.ndarray, np.ndarray],
    max_activation: float,
    options: PipelineOptions,
    text_model: bool = False,
) -> NeuronTypeResult:
    """Type by the permutation test; `top` and `random` are (acts, modality) of the top samples and the
    random records. The p_* shares of the result are the threshold rule's, for reference."""
    reference = classify_neuron(top[0], top[1], max_activation, options, text_model)
    rng = np.random.default_rng(options.seed)
    thresholds = {MODALITY_IMAGE: options.visual_threshold, MODALITY_TEXT: options.text_threshold}
    p_values: dict[int, float | None] = {}
    active: dict[int, bool] = {}
    peaks: dict[int, np.ndarray] = {}
    for code in (MODALITY_IMAGE, MODALITY_TEXT):
        top_peaks = modality_peaks(top[0], top[1], max_activation, code)
        rand_peaks = modality_peaks(random[0], random[1], max_activation, code)
        peaks[code] = top_peaks
        top_ok, rand_ok = top_peaks[~np.isnan(top_peaks)], rand_peaks[~np.isnan(rand_peaks)]
        if top_ok.size < 2 or rand_ok.size < 2:
            p_values[code], active[code] = None, False
            continue
        p = greater_p(top_ok, rand_ok, options.permutations, rng)
        p_values[code] = p
        active[code] = p < options.type_alpha and float(top_ok.mean()) >= thresholds[code]
    both = ~np.isnan(peaks[MODALITY_IMAGE]) & ~np.isnan(peaks[MODALITY_TEXT])
    difference = None
    if both.sum() >= 2:
        difference = sign_flip_p(
            peaks[MODALITY_IMAGE][both] - peaks[MODALITY_TEXT][both], options.permutations, rng
        )
    kinds: dict[tuple[bool, bool], NeuronType] = {
        (True, True): "multimodal",
        (True, False): "visual",
        (False, True): "text",
        (False, False): "unknown",
    }
    kind = kinds[(active[MODALITY_IMAGE], active[MODALITY_TEXT])]
    confident = all(p is None or p < options.type_alpha or p > 0.5 for p in p_values.values())
    return NeuronTypeResult(
        kind,
        reference.fractions,
        reference.n_samples,
        confident,
        "permutation",
        (p_values[MODALITY_IMAGE], p_values[MODALITY_TEXT], difference),
    )
