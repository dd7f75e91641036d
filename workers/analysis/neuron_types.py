"""Neuron type from its top samples (docs/method.md#neuron-types). Pure functions over arrays.

Threshold method. Vision-language models follow Xu et al. 2025: each top sample is visual-activated when
at least `visual_min_tokens` image tokens have a normalised activation above `visual_threshold`,
text-activated when at least `text_min_tokens` text tokens exceed `text_threshold`; both → multimodal,
neither → unknown (the sample does not respond). Text-only models use `text_model_min_tokens` (default 1)
instead of `text_min_tokens`: Xu et al.'s "≥ 2 tokens" is meant for a VLM's long image descriptions, while
a selective text neuron of a text model fires on one word per sentence. The neuron's type is the most
frequent class among its RESPONDING top samples (class ≠ unknown; ties go to the first of TIE_ORDER), so a
selective neuron whose concept is in only a few top samples is typed by that concept; it is `unknown` only
when no top sample responds. The shares p_* stay over all N top samples (Xu et al.'s numbers).

Permutation method: a conditional test of the modality of each top sample's peak token under the null
"within a sample the activation does not depend on the token's modality: given a sample's activation
values, every assignment of them to its content tokens is equally likely". The scan selects top samples by
their max, a symmetric function of the values, so the null survives the selection. Under it, top sample i
peaks on an image token with probability q_i = image tokens ÷ content tokens (ties for the max broken by
a seeded draw among the tied tokens), independently, so K = top samples peaking on an image token is
Poisson-binomial(q); its tails, randomised at the observed value, give p-values that are exactly uniform
under the null. The type is the threshold rule's; a single-modality
type is high-confidence only when its preference is significant (p < `type_alpha`). Text-only models have
nothing to test: the method is refused (InvalidRequest; the API answers 422 before).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.contract import NeuronType, PipelineOptions, TypeEvidence
from workers.errors import InvalidRequest
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_PAD, MODALITY_TEXT, normalise

TIE_ORDER: tuple[NeuronType, ...] = ("multimodal", "visual", "text", "unknown")
"""Order that breaks ties between equally frequent sample types."""
RESPONDING: tuple[NeuronType, ...] = ("multimodal", "visual", "text")
"""Sample classes of a responding sample (the rest are `unknown`)."""
TEXT_MODEL_PERMUTATION = (
    "type_method 'permutation' tests whether the neuron's peak falls on image rather than text tokens "
    "more often than chance within each sample; a text-only model has no image tokens, so the test cannot "
    "say anything: use type_method 'threshold'"
)
"""Why the permutation method is refused on text-only models."""


@dataclass(frozen=True, slots=True)
class NeuronTypeResult:
    neuron_type: NeuronType
    fractions: dict[NeuronType, float]
    """Share of top samples of each sample type; they sum to 1 (all 0 without samples)."""
    n_samples: int
    high_confidence: bool
    method: str = "xu-threshold"
    p_values: tuple[float | None, float | None, float | None] = (None, None, None)
    """Permutation method: (image-peak, text-peak, two-sided) p-values; None where not computed."""
    n_responding: int | None = None
    """Top samples of a class other than unknown."""

    def evidence(self) -> TypeEvidence:
        return TypeEvidence(
            p_visual=self.fractions["visual"],
            p_text=self.fractions["text"],
            p_multimodal=self.fractions["multimodal"],
            p_unknown=self.fractions["unknown"],
            n_samples=self.n_samples,
            n_responding=self.n_responding,
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
    """The neuron's type and evidence from its top samples' per-token activations (threshold method):
    the most frequent class among responding top samples; unknown only when none responds."""
    kinds = classify_samples(acts, modality, max_activation, options, text_model)
    n = int(kinds.shape[0])
    counts = {kind: int((kinds == kind).sum()) for kind in TIE_ORDER}
    fractions: dict[NeuronType, float] = {kind: (counts[kind] / n if n else 0.0) for kind in TIE_ORDER}
    method = "text-threshold" if text_model else "xu-threshold"
    responding = sum(counts[kind] for kind in RESPONDING)
    if responding == 0:
        return NeuronTypeResult("unknown", fractions, n, False, method, n_responding=0)
    winner = max(RESPONDING, key=lambda kind: (counts[kind], -TIE_ORDER.index(kind)))
    confident = counts[winner] / responding > options.high_confidence
    return NeuronTypeResult(winner, fractions, n, confident, method, n_responding=responding)


def peak_on_image(acts: np.ndarray, modality: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool per sample: its peak content token is an image token (ties for the max drawn at random)."""
    content = modality != MODALITY_PAD
    values = np.where(content, acts, -np.inf)
    tied = content & (values == values.max(axis=1, keepdims=True))
    pick = np.where(tied, rng.random(acts.shape), -1.0).argmax(axis=1)
    return np.asarray(modality[np.arange(acts.shape[0]), pick] == MODALITY_IMAGE)


def poisson_binomial(q: np.ndarray) -> np.ndarray:
    """pmf of the number of successes of independent Bernoulli(q_i) trials (exact convolution)."""
    pmf = np.ones(1)
    for p in q:
        pmf = np.concatenate([pmf * (1.0 - p), [0.0]]) + np.concatenate([[0.0], pmf * p])
    return pmf


def peak_modality_p_values(
    acts: np.ndarray, modality: np.ndarray, seed: tuple[int, int]
) -> tuple[float | None, float | None, float | None]:
    """One-sided p-values (image, text) and the two-sided one for K = top samples peaking on an image token,
    under within-sample exchangeability: P(K > k) + u·P(K = k) and P(K < k) + (1 − u)·P(K = k), u a seeded
    uniform draw (a discrete K would otherwise make the test conservative); None when no sample has both
    image and text tokens (nothing to test). `seed`: (the request's seed, the neuron)."""
    n_image = (modality == MODALITY_IMAGE).sum(axis=1)
    n_content = (modality != MODALITY_PAD).sum(axis=1)
    keep = n_content > 0
    q = n_image[keep] / n_content[keep]
    if not np.any((q > 0) & (q < 1)):
        return None, None, None
    rng = np.random.default_rng(seed)
    observed = int(peak_on_image(acts[keep], modality[keep], rng).sum())
    pmf = poisson_binomial(q)
    draw = float(rng.random())  # randomised at the observed value: exactly uniform under the null
    visual = float(np.clip(pmf[observed + 1 :].sum() + draw * pmf[observed], 0.0, 1.0))
    text = float(np.clip(pmf[:observed].sum() + (1.0 - draw) * pmf[observed], 0.0, 1.0))
    return visual, text, min(1.0, 2.0 * min(visual, text))


def permutation_type(
    acts: np.ndarray,
    modality: np.ndarray,
    max_activation: float,
    options: PipelineOptions,
    text_model: bool = False,
    neuron: int = 0,
) -> NeuronTypeResult:
    """Type by the threshold rule, with the within-sample peak-modality test's p-values; a visual (text)
    type is high-confidence only when its p-value is below `type_alpha`. Text-only models: InvalidRequest."""
    if text_model:
        raise InvalidRequest(TEXT_MODEL_PERMUTATION)
    reference = classify_neuron(acts, modality, max_activation, options)
    p_values = peak_modality_p_values(acts, modality, (options.seed, neuron))
    preference = {"visual": p_values[0], "text": p_values[1]}.get(reference.neuron_type)
    confident = reference.high_confidence
    if reference.neuron_type in ("visual", "text"):
        confident = confident and preference is not None and preference < options.type_alpha
    return NeuronTypeResult(
        reference.neuron_type,
        reference.fractions,
        reference.n_samples,
        confident,
        "permutation",
        p_values,
        reference.n_responding,
    )
