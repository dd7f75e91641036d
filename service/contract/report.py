"""The NeuronReport (docs/api.md#reports): everything NeuronLens knows about one neuron, as workers store
it and the API serves it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, JsonValue

from service.contract.base import ContractModel, NeuronType
from service.contract.chance import ChanceLevel
from service.contract.dictionaries import DictionaryRef
from service.contract.options import PipelineOptions, Protocol, ScaleMethod


class TypeEvidence(ContractModel):
    """Fractions of the top-N samples of each sample type (Xu et al. 2025; docs/method.md#neuron-types)."""

    p_visual: float = Field(ge=0, le=1, description="Share of top samples that are visual-activated only.")
    p_text: float = Field(ge=0, le=1, description="Share of top samples that are text-activated only.")
    p_multimodal: float = Field(ge=0, le=1, description="Share of top samples that are both.")
    p_unknown: float = Field(
        ge=0, le=1, description="Share of top samples that are neither (they do not respond)."
    )
    n_samples: int = Field(ge=0, description="Top samples classified (N).")
    n_responding: int | None = Field(
        default=None,
        ge=0,
        description="Top samples that respond (class visual, text or multimodal): the type is the most "
        "frequent class among them, `unknown` only when this is 0. Null in reports made before it existed.",
    )
    high_confidence: bool = Field(
        description="True when the winning class's share of the responding top samples exceeds the "
        "high-confidence setting (permutation method: a visual or text type also needs its p-value below "
        "`type_alpha`)."
    )
    method: Literal["xu-threshold", "text-threshold", "permutation"] = Field(
        default="xu-threshold",
        description="Rule that set `neuron_type`: `xu-threshold` (Xu et al. 2025, vision-language models), "
        "`text-threshold` (text-only models: one selective token is enough), `permutation` (the xu-threshold "
        "type, with the within-sample peak-modality test's p-values; vision-language models only).",
    )
    p_value_visual: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Permutation method: exact one-sided p-value that the top samples peak on image tokens "
        "more often than chance, under the null that within each sample the activation does not depend on "
        "the token's modality (each sample then peaks on an image token with probability image tokens ÷ "
        "content tokens). Null for the threshold method or when no top sample has both modalities.",
    )
    p_value_text: float | None = Field(
        default=None, ge=0, le=1, description="As `p_value_visual`, for peaks on text tokens."
    )
    p_value_difference: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Permutation method: two-sided p-value of the same test (2 × the smaller one-sided "
        "p-value, at most 1): the peak's modality differs from within-sample chance either way.",
    )


class Exemplar(ContractModel):
    """One sample (a top-activating one, or a random one) with this neuron's activation at each token."""

    sample_id: int = Field(ge=0, description="Index of the sample in the probe set.")
    rank: int = Field(
        ge=0,
        description="Top exemplars: 0 = the sample with the highest max activation. Random exemplars: the "
        "record's slot in the scan's seeded random draw.",
    )
    kind: Literal["text", "image+text"] = Field(description="Sample kind.")
    tokens: list[str] = Field(description="Content tokens (special and template tokens removed).")
    activations: list[float] = Field(description="Raw activation at each token, same length as `tokens`.")
    activations_norm: list[float] = Field(
        description="clip(10·activation/max_activation, 0, 10), same length as `tokens`."
    )
    max_activation: float = Field(description="Largest raw activation in this sample.")
    image_url: str | None = Field(
        default=None,
        description="Shaded exemplar image (PNG): set on image exemplars with patch activations when the API "
        "serves the report (workers store reports without it).",
    )
    original_image_url: str | None = Field(
        default=None,
        description="The same image unshaded, as the model saw it (PNG); set like `image_url`.",
    )
    patch_grid: list[int] | None = Field(default=None, description="[rows, cols] of image patches.")
    patch_activations: list[float] | None = Field(
        default=None, description="Raw activation per patch, row-major."
    )
    simulated: list[float] | None = Field(
        default=None,
        description="The simulator's prediction (0–10, the scale of `activations_norm`) at each token, same "
        "length as `tokens`, for a record held out for scoring; null for records shown to the explainer, "
        "and when the simulator's reply for it could not be parsed.",
    )

    @property
    def has_image(self) -> bool:
        """True for an image exemplar with patch activations: the explain worker stores its shaded PNG
        and its unshaded original (``keys.exemplar_image_name``) and the API links them in `image_url` and
        `original_image_url` when it serves the report."""
        return (
            self.kind == "image+text" and self.patch_grid is not None and self.patch_activations is not None
        )


class ExplanationCandidate(ContractModel):
    """One of the k explanations the `openai` explainer drew, scored on the calibration split."""

    text: str = Field(description="The candidate explanation, one sentence.")
    calibration_correlation: float | None = Field(
        description="Pooled Pearson r of its simulation on the calibration records, −1 … 1; null when "
        "undefined (see `calibration_null_reason`). The highest wins; an undefined one ranks last."
    )
    calibration_null_reason: str | None = Field(description="Why `calibration_correlation` is null.")
    parse_failures: int = Field(
        ge=0, description="Simulator replies for this candidate that could not be parsed."
    )


class Explanation(ContractModel):
    """What the neuron responds to, in words, and who wrote it."""

    text: str = Field(description="One sentence: what the neuron finds.")
    backend: str = Field(description="`baseline` (offline, from activation statistics) or `openai`.")
    model: str = Field(description="Explainer model name (`baseline-v1` for the baseline).")
    prompt_version: str = Field(description="Version of the prompt or rule set that produced the text.")
    candidates: list[ExplanationCandidate] | None = Field(
        default=None, description="All candidate explanations with their calibration scores, when k > 1."
    )


class Simulation(ContractModel):
    """How well the explanation predicts real activations (Bills et al. 2023)."""

    correlation: float | None = Field(
        description="Pearson r pooled over every held-out token of top and random records, −1 … 1; "
        "null when undefined (see `null_reason`)."
    )
    null_reason: str | None = Field(default=None, description="Why `correlation` is null.")
    method: Literal["pooled-pearson"] = Field(description="Scoring method.")
    scorer: Literal["simulation", "simulation-batched"] = Field(
        default="simulation",
        description="`simulation`: one simulator call per held-out record; `simulation-batched`: several "
        "records per call (same pooled Pearson).",
    )
    backend: str = Field(description="Simulator backend.")
    model: str = Field(description="Simulator model name.")
    n_top: int = Field(ge=0, description="Held-out top records scored.")
    n_random: int = Field(ge=0, description="Held-out random records scored.")
    n_tokens: int = Field(ge=0, description="Tokens pooled into `correlation`.")
    correlation_top: float | None = Field(
        default=None, description="Pearson r over held-out top records only."
    )
    correlation_random: float | None = Field(
        default=None, description="Pearson r over held-out random records only."
    )
    ci95: list[float] | None = Field(
        default=None, description="Bootstrap 95% interval of `correlation`, resampling records."
    )
    parse_failures: int = Field(ge=0, description="Simulator replies that could not be parsed.")
    prompt_version: str | None = Field(
        default=None,
        description="Version of the simulator prompt(s) (`openai` backend); null for the baseline.",
    )
    chance: ChanceLevel | None = Field(
        default=None,
        description="The score against chance: a null distribution from k explanations of other neurons of "
        "the layer simulated on the same held-out records, the score's z, p and `beyond_chance`; null when "
        "`chance_explanations` is 0 (and in reports made before it existed).",
    )


class DatasetRef(ContractModel):
    """The probe set the scan behind the report ran over."""

    id: str = Field(description="Probe set id.")
    revision: str = Field(description="Probe set revision.")
    n_samples: int = Field(ge=0, description="Samples scanned.")
    n_tokens: int = Field(ge=0, description="Content tokens scanned.")


class Provenance(ContractModel):
    """How the report was made: versions, the scan it read, seed, timings and LLM usage."""

    pipeline_version: str = Field(description="NeuronLens pipeline version.")
    scan_id: str = Field(description="Artifact key of the scan the report was built from.")
    seed: int = Field(description="Seed used for random records, splits and bootstrap.")
    created_at: datetime = Field(description="When the report was written (UTC).")
    timings_s: dict[str, float] = Field(
        description="Seconds per stage for this neuron (explain, simulate, …)."
    )
    llm_tokens: dict[str, int] = Field(
        description="LLM tokens used (prompt, completion) by every request made for this neuron, as the "
        "endpoint reported them; 0 for the baseline."
    )
    llm_calls: dict[str, int] | None = Field(
        default=None,
        description="LLM requests made for this neuron by role (explainer, simulator), retries included; "
        "0 for the baseline.",
    )
    llm_cost_usd: float | None = Field(
        default=None,
        ge=0,
        description="USD this neuron's LLM requests cost at the endpoint's configured prices; null without "
        "prices, for the baseline, and in reports written before prices existed.",
    )
    non_default_options: dict[str, JsonValue] | None = Field(
        default=None,
        description="The request options that differed from their defaults when the report was made, by "
        "name (`{}`: all defaults). Not empty means the report is not the default one of its neuron: "
        "another report variant, and another scan when `n_top` or `seed` is among them. Null in reports "
        "written before it was recorded (then `seed` alone tells).",
    )

    def options_changed(self) -> dict[str, JsonValue]:
        """The non-default options this report was made with (see `recorded_non_default_options`)."""
        return recorded_non_default_options(self.model_dump(mode="json"))


def recorded_non_default_options(provenance: Mapping[str, Any]) -> dict[str, JsonValue]:
    """A stored report's non-default options, from its `provenance` (a parsed JSON object):
    `non_default_options` where recorded; for older reports the seed alone, when it is not the default."""
    recorded = provenance.get("non_default_options")
    if isinstance(recorded, dict):
        return recorded
    seed = provenance.get("seed")
    return {"seed": seed} if seed is not None and seed != PipelineOptions().seed else {}


class Normalisation(ContractModel):
    """The 0–10 scale of `activations_norm`, typing and the baseline explainer (docs/method.md#scale)."""

    method: ScaleMethod = Field(description="`global-max` or `quantile` (see the request's `scale`).")
    quantile: float | None = Field(default=None, description="Quantile of per-sample maxima (`quantile`).")
    scale: float = Field(description="Raw activation that maps to 10 (values above it are clipped).")
    top1_ratio: float | None = Field(
        default=None,
        description="Top-1 sample's max ÷ the 5th sample's max; null when undefined (≤ 0 or < 5 samples).",
    )
    top1_dominates: bool = Field(
        description="True when `top1_ratio` exceeds 2: one sample sets the global max; read exemplars "
        "and the global-max scale with care."
    )
    concept_samples: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="`quantile` only: when the quantile sat in the background, the k (1–4) top samples "
        "above the gap whose lowest max became the scale (a rare concept); null otherwise.",
    )
    reason: str | None = Field(
        default=None,
        description="Which value maps to 10 and why, in one sentence (docs/method.md#scale). Null in "
        "reports made before it existed.",
    )


class Density(ContractModel):
    """How often the neuron fires over the probe set (docs/method.md#density), as SAE work reports per
    latent: the share of samples and of tokens above the typing threshold."""

    threshold: float = Field(
        ge=0, le=10, description="Threshold on the 0–10 scale (the request's `text_threshold`)."
    )
    threshold_raw: float = Field(description="The same threshold in raw activation units.")
    sample_fraction: float = Field(
        ge=0, le=1, description="Share of probe samples whose max activation exceeds the threshold."
    )
    token_fraction: float = Field(
        ge=0, le=1, description="Share of the probe set's content tokens whose activation exceeds it."
    )
    n_samples_above: int | None = Field(
        default=None, ge=0, description="Samples above the threshold (exact counts only, else null)."
    )
    exact: bool = Field(
        description="True when counted over every sample (fewer than N samples exceed the threshold, so all "
        "are among the scan's top N); false when estimated from the scan's seeded random records."
    )
    n_records: int | None = Field(
        default=None,
        ge=0,
        description="Estimates only: random records the shares are estimated from (a seeded uniform draw "
        "of probe samples; the sampling error of `sample_fraction` is about sqrt(f(1 − f)/n_records)).",
    )


class BinaryScore(ContractModel):
    """Balanced accuracy of yes/no judgements over held-out records (Paulo et al. 2024, Delphi)."""

    balanced_accuracy: float | None = Field(
        description="(true-positive rate + true-negative rate) / 2, 0 … 1 (0.5 = chance); null when either "
        "class has no judged record."
    )
    n_positive: int = Field(
        ge=0,
        description="Positive records judged: held-out top records (detection also counts a random record "
        "whose max reaches half the weakest top record's), or correctly marked top records (fuzzing).",
    )
    n_negative: int = Field(
        ge=0,
        description="Negative records judged: the other held-out random records (detection) or held-out top "
        "records with the marks moved to random tokens (fuzzing).",
    )
    parse_failures: int = Field(ge=0, description="Records whose judgement could not be parsed.")
    llm_calls: int = Field(ge=0, description="LLM requests made for this score (0 for the baseline).")
    prompt_version: str | None = Field(default=None, description="Prompt version (`openai` backend).")
    precision: float | None = Field(
        default=None,
        description="`delphi` protocol: true positives / records judged positive, 0 … 1 (0 when none was; "
        "Delphi's rule). Null under the other protocols.",
    )
    recall: float | None = Field(
        default=None,
        description="`delphi` protocol: true positives / parsed positive records, 0 … 1 (Delphi's). Null "
        "under the other protocols.",
    )
    f1: float | None = Field(
        default=None,
        description="`delphi` protocol: 2·precision·recall / (precision + recall), 0 … 1 (0 when both are "
        "0; Delphi's `f1_score`). Null under the other protocols.",
    )
    auc: float | None = Field(
        default=None,
        description="`delphi` protocol: area under the ROC curve of the judge's P(1) (from the logprobs of "
        "its 0/1 answer tokens, P(1) / (P(0) + P(1)) as Delphi computes it) against the truth, 0 … 1 "
        "(0.5 = chance); null when the endpoint returns no logprobs, the baseline judge answered, or one "
        "class has no scored record.",
    )


class NeuronReport(ContractModel):
    """Everything NeuronLens knows about one neuron."""

    model: str = Field(description="Model id.")
    model_revision: str = Field(description="Weights revision.")
    layer: int = Field(ge=0, description="Layer index.")
    neuron: int = Field(ge=0, description="Neuron index within the layer.")
    hook: str = Field(description="Hook point id where the activation was read.")
    dictionary: DictionaryRef | None = Field(
        default=None, description="Null for a neuron; for a latent (`neuron` is its index), its dictionary."
    )
    neuron_type: NeuronType = Field(description="Argmax of the type evidence.")
    type_evidence: TypeEvidence
    max_activation: float = Field(description="Largest raw activation seen over the whole probe set.")
    exemplars: list[Exemplar] = Field(description="Top-activating samples, highest first.")
    random_exemplars: list[Exemplar] | None = Field(
        default=None,
        description="A few of the random records scored against the explanation (held out, so each has "
        "`simulated`), in the scan's seeded draw order: how the neuron behaves on ordinary samples. Null "
        "in reports written before pipeline 0.2.0.",
    )
    explanation: Explanation
    simulation: Simulation
    domains: dict[str, float] | None = Field(
        default=None,
        description="Share of tokens with activation > 0 per domain label, when samples carry them.",
    )
    domain_specific: list[str] | None = Field(
        default=None,
        description="Domains this neuron is specific to (MMNeuron, Huo et al. 2024; "
        "docs/method.md#domain-specific-neurons): only "
        "neurons with at least 20 positive tokens in some domain are ranked (so a near-silent neuron never "
        "is); among the 1% of the layer's neurons with the lowest entropy of their normalised per-domain "
        "rates, a ranked neuron is specific to every domain where its normalised rate is above the layer's "
        "95th percentile and it has that support. Empty when not domain-specific; null when the probe set "
        "has no domain labels.",
    )
    dataset: DatasetRef
    provenance: Provenance
    normalisation: Normalisation | None = Field(
        default=None, description="What set the 0–10 scale, and whether one sample dominates it."
    )
    density: Density | None = Field(
        default=None,
        description="Activation density over the probe set: shares of samples and tokens above the typing "
        "threshold (null in reports made before it existed).",
    )
    domain_support: dict[str, int] | None = Field(
        default=None,
        description="Tokens with activation > 0 per domain label (the support behind `domains`).",
    )
    detection: BinaryScore | None = Field(
        default=None, description="Detection score (Paulo et al. 2024), when requested in `scorers`."
    )
    fuzzing: BinaryScore | None = Field(
        default=None, description="Fuzzing score (Paulo et al. 2024), when requested in `scorers`."
    )
    protocol: Protocol = Field(
        default="neuronlens",
        description="Whose record selection and scoring made this report (the request's `protocol` option; "
        "docs/method.md#protocols): `neuronlens`, `bills-2023` or `delphi`. Reports written before "
        "protocols existed were made by `neuronlens`.",
    )
