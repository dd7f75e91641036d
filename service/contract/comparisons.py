"""Comparisons of two checkpoints (`POST /v1/comparisons`): the request, the verdict rule, one neuron's
comparison, the job's payload and result, its status, and where comparisons are stored.

A comparison scans a base and a target model on the same probe set and compares every requested neuron
(docs/method.md#comparisons). Not re-exported by `service.contract` (import this module), so the package's
namespace stays the explanation pipeline's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, Strict

from service.contract.artifact_keys import canonical_json
from service.contract.base import ContractModel, NeuronType, StrictFloat
from service.contract.cost import CostEstimate, ScanEstimate
from service.contract.jobs import ExplainJobPayload, JobError, LayerNeurons, LLMUsage, Progress
from service.contract.options import PipelineOptions
from service.contract.report import Exemplar
from service.contract.requests import (
    _LAYERS_ONE_OF,
    _NEURONS_ONE_OF,
    MAX_LAYER_IDS,
    MAX_NAME_LENGTH,
    MAX_NEURON_IDS,
    BackendField,
    Budget,
    ExplanationRequest,
    Index,
    NeuronRange,
)

Verdict = Literal["unchanged", "rescaled", "changed", "dead", "born"]
"""What happened to a neuron between base and target (docs/method.md#comparisons)."""
VERDICTS: tuple[Verdict, ...] = ("unchanged", "rescaled", "changed", "dead", "born")
Reexplain = Literal["none", "changed", "all"]
"""Which target neurons get a fresh explanation: none, those judged `changed` or `born`, or all."""
ComparisonState = Literal["queued", "scanning", "explaining", "comparing", "finished", "failed"]
"""Where a comparison stands."""

COMPARE_TASK = "workers.process.compare_task.run_compare_job"
"""Dotted path of the compare task (one layer and chunk of neurons of a comparison)."""
COMPARISON_PREFIX = "cmp-"
"""Comparison ids start with this (what clients see)."""
COMPARE_PART_PREFIX = "cmpp-"
"""Compare jobs (one per layer and chunk of a comparison) start with this."""
COMPARISON_ROOT = "comparisons"
"""Artifact-store folder of stored comparisons: `comparisons/<id>/L<layer>/<neuron>.json`, and each neuron's
exemplars beside it (`<neuron>.exemplars.json`)."""
COMPARISON_EXEMPLARS = 5
"""Top exemplars per side kept for a compared neuron's viewer page."""


class VerdictRule(ContractModel):
    """The thresholds of the verdict rule (docs/method.md#comparisons); defaults tuned on the changed
    checkpoint of the planted BERT."""

    min_pearson: StrictFloat = Field(
        default=0.9,
        ge=-1,
        le=1,
        description="Least Pearson correlation of the per-sample maxima for `unchanged` or `rescaled`.",
    )
    min_jaccard: StrictFloat = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Least overlap of the two top sample sets taken by value (`top_overlap`, a Jaccard "
        "index) for `unchanged` or `rescaled`.",
    )
    top_tolerance: StrictFloat = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="A side's top set by value holds every sample whose max reaches its N-th largest "
        "per-sample max less this share of it (0: ties only), so near-ties at the boundary are not a change.",
    )
    ratio_low: StrictFloat = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Max-activation ratio (target ÷ base) below which an agreeing neuron is `rescaled`.",
    )
    ratio_high: StrictFloat = Field(
        default=1.25, ge=1, description="Max-activation ratio above which an agreeing neuron is `rescaled`."
    )
    silent_share: StrictFloat = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="A side is silent when its max activation is ≤ 0 or ≤ this share of the median max "
        "activation of its layer: silent on the target only is `dead`, on the base only `born`.",
    )


class ComparisonRequest(ContractModel):
    """`POST /v1/comparisons`: compare the neurons of two checkpoints that tokenise alike."""

    base: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="Base model id (`GET /v1/models`)."
    )
    target: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Target model id: another registry model, e.g. a fine-tune or another revision of the "
        "base registered under its own id. It must share the base's tokenizer, hook point and widths.",
    )
    layers: Annotated[list[Index], Field(min_length=1, max_length=MAX_LAYER_IDS)] | Literal["all"] = Field(
        json_schema_extra={"one_of": _LAYERS_ONE_OF[:2]},
        description='Layers to compare (a list; repeats count once) or `"all"`.',
    )
    neurons: (
        Annotated[list[Index], Field(min_length=1, max_length=MAX_NEURON_IDS)] | NeuronRange | Literal["all"]
    ) = Field(
        json_schema_extra={"one_of": _NEURONS_ONE_OF},
        description='Neurons of each layer: a list, a `{start, stop}` range (stop exclusive) or `"all"`.',
    )
    hook: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Hook point id; default: the base's first (with `units`, the dictionary's own).",
    )
    units: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="The unit basis: `neurons` (the default) or a dictionary id that both models have "
        "(`GET /v1/models`: `dictionaries`; each may keep its own files and revision, with the same latent "
        "count): its latents are then the units compared, each side's scan encoding its own activations "
        "(docs/dictionaries.md).",
    )
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Probe set both are scanned on; default: the base's first.",
    )
    explainer: BackendField = Field(default=None, description="Explainer backend (as for explanations).")
    simulator: BackendField = Field(
        default=None, description="Simulator backend: re-scores the base's explanations on the target."
    )
    endpoint: str | None = Field(
        default=None,
        max_length=64,
        description="Configured LLM endpoint name for the `openai` backends (as for explanations).",
    )
    options: PipelineOptions = Field(default_factory=PipelineOptions, description="Method parameters.")
    reexplain: Reexplain = Field(
        default="changed",
        description="Explain target neurons afresh: `none`, `changed` (those judged `changed` or `born`: an "
        "unchanged checkpoint costs no explanation call) or `all`.",
    )
    rule: VerdictRule = Field(default_factory=VerdictRule, description="Thresholds of the verdict rule.")
    budget: Budget | None = Field(
        default=None,
        description="LLM budget: one pool over the whole comparison (the base's explanations, the "
        "re-scoring on the target and the fresh explanations). When it runs out the comparison still "
        "finishes: every neuron keeps its agreement numbers and verdict, and those whose LLM work was "
        "refused are marked and listed in `not_done`.",
    )
    dry_run: Annotated[bool, Strict()] = Field(
        default=False, description="Answer 200 with the cost estimate and enqueue nothing."
    )

    def side(self, model: str) -> ExplanationRequest:
        """The explanation request of one side (`base` or `target` id) with this request's layers,
        neurons and method: what its scan and reports are keyed by."""
        return ExplanationRequest(
            model=model,
            layers=self.layers,
            neurons=self.neurons,
            hook=self.hook,
            units=self.units,
            dataset=self.dataset,
            explainer=self.explainer,
            simulator=self.simulator,
            endpoint=self.endpoint,
            options=self.options,
            budget=self.budget,
        )


class NeuronComparison(ContractModel):
    """One neuron compared between base and target (docs/method.md#comparisons)."""

    base_model: str = Field(description="Base model id.")
    target_model: str = Field(description="Target model id.")
    units: str | None = Field(
        default=None, description="The dictionary id when the unit is a latent of it; null for a neuron."
    )
    layer: int = Field(ge=0, description="Layer index.")
    neuron: int = Field(ge=0, description="Neuron index (a latent's index with `units`).")
    verdict: Verdict = Field(description="`unchanged`, `rescaled`, `changed`, `dead` or `born`, by the rule.")
    pearson_max: float | None = Field(
        description="Pearson correlation of the two per-sample maxima over every probe sample (-1 … 1); "
        "null when either is constant."
    )
    pearson_tokens: float | None = Field(
        description="Pearson correlation over the tokens of the samples both scans hold per-token "
        "activations for (the shared random records and both top sets' common samples); null when undefined."
    )
    n_tokens: int = Field(ge=0, description="Tokens `pearson_tokens` is computed over.")
    jaccard_top: float = Field(ge=0, le=1, description="Jaccard overlap of the two top-N sample-id sets.")
    top_overlap: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Jaccard overlap of the two top sets taken by value: each holds every sample within the "
        "rule's `top_tolerance` of its side's N-th largest per-sample max (what the verdict reads; null in "
        "comparisons stored before it existed).",
    )
    base_max: float = Field(description="Base's max activation over the probe set (raw units).")
    target_max: float = Field(description="Target's max activation over the probe set (raw units).")
    max_ratio: float | None = Field(description="target_max ÷ base_max; null when base_max ≤ 0.")
    base_density: float | None = Field(
        default=None, description="Base's share of probe samples above the typing threshold (0 … 1)."
    )
    target_density: float | None = Field(
        default=None, description="Target's share of probe samples above the typing threshold (0 … 1)."
    )
    density_change: float | None = Field(default=None, description="target_density − base_density.")
    base_type: NeuronType | None = Field(default=None, description="The base's neuron type.")
    target_type: NeuronType | None = Field(default=None, description="The target's neuron type.")
    type_changed: bool = Field(default=False, description="The two types differ.")
    base_explanation: str | None = Field(
        default=None, description="The base's stored explanation (null when the base has no report)."
    )
    base_score: float | None = Field(
        default=None,
        description="Its simulation score (Pearson, -1 … 1) on the base, from the base's report.",
    )
    base_score_on_target: float | None = Field(
        default=None, description="The same explanation simulated and scored on the target's activations."
    )
    score_drop: float | None = Field(
        default=None, description="base_score − base_score_on_target: how much the old description lost."
    )
    target_explanation: str | None = Field(
        default=None, description="A fresh explanation of the target's neuron, where `reexplain` asked."
    )
    target_score: float | None = Field(default=None, description="Its simulation score on the target.")
    base_top_ids: list[int] = Field(
        default_factory=list, description="The base's top sample ids (first `n_exemplars`), highest first."
    )
    target_top_ids: list[int] = Field(
        default_factory=list, description="The target's top sample ids (first `n_exemplars`), highest first."
    )
    budget_exhausted: bool = Field(
        default=False,
        description="The comparison's budget ran out before this neuron's LLM work was done: its agreement "
        "numbers and verdict stand, and what the budget refused is null (`base_explanation` when the base "
        "was not explained, `base_score_on_target` when the re-scoring was refused, `target_explanation` "
        "when `reexplain` asked for one). Posting the comparison again (a fresh budget) completes it.",
    )


class ComparisonExemplars(ContractModel):
    """Both sides' top exemplars of one compared neuron, stored beside its NeuronComparison (not in the
    status pages or tables): the comparison-neuron page shows them side by side."""

    base: list[Exemplar] = Field(
        default_factory=list,
        description="The base's top exemplars (at most `COMPARISON_EXEMPLARS`, from its stored report), "
        "highest first: activations on the base, normalised (0 … 10) by the base's scale.",
    )
    target: list[Exemplar] = Field(
        default_factory=list,
        description="The target's top exemplars (at most `COMPARISON_EXEMPLARS`, from its scan), highest "
        "first: activations on the target, normalised (0 … 10) by the target's scale.",
    )


class ComparisonAccepted(ContractModel):
    """202 answer of `POST /v1/comparisons`."""

    comparison_id: str = Field(description="Deterministic id (`cmp-…`): a hash of the resolved request.")
    status_url: str = Field(description="Where to poll: `/v1/comparisons/{comparison_id}`.")


class ComparisonStatus(ContractModel):
    """`GET /v1/comparisons/{comparison_id}`: where it stands and a page of its neurons."""

    comparison_id: str = Field(description="Comparison id.")
    status: ComparisonState = Field(description="Where the comparison stands.")
    base: str = Field(description="Base model id.")
    target: str = Field(description="Target model id.")
    units: str | None = Field(
        default=None, description="The dictionary whose latents are compared; null: neurons."
    )
    layers: list[int] = Field(description="Layers compared.")
    progress: Progress = Field(description="Neurons compared out of requested.")
    base_job_id: str = Field(description="The job (`exp-…`) that explains the base's neurons.")
    created_at: datetime | None = Field(default=None, description="When it was submitted (UTC).")
    error: JobError | None = Field(default=None, description="Why it failed; only when `failed`.")
    verdicts: dict[str, int] = Field(
        default_factory=dict, description="Neurons per verdict, over every neuron compared so far."
    )
    usage: LLMUsage | None = Field(
        default=None, description="LLM usage of the compare jobs (re-scoring and fresh explanations)."
    )
    comparisons: list[NeuronComparison] | None = Field(
        default=None, description="A page of the neurons compared, in (layer, neuron) order, once finished."
    )
    comparisons_total: int | None = Field(default=None, description="Neurons the finished comparison holds.")
    budget_exhausted: bool = Field(
        default=False,
        description="The budget ran out: the comparison finished, and `not_done` lists the neurons whose "
        "LLM work (base explanation, re-scoring, fresh explanation) it refused.",
    )
    not_done: list[LayerNeurons] | None = Field(
        default=None,
        description="Neurons the budget left not fully compared (their verdicts stand; see "
        "NeuronComparison.budget_exhausted); null when none.",
    )


class ComparisonEstimate(ContractModel):
    """`POST /v1/comparisons` with `dry_run: true`: what the comparison would cost; nothing is enqueued."""

    base: CostEstimate = Field(description="The base's explanations (stored reports are reused and free).")
    target_scan: ScanEstimate = Field(description="The target's scan (none when its layers are stored).")
    neurons: int = Field(ge=0, description="Neurons compared (over every layer).")
    rescore_llm_calls: int = Field(
        ge=0, description="Simulator calls re-scoring the base's explanations on the target (0 offline)."
    )
    explanation_calls_max: int = Field(
        ge=0,
        description="Most explainer calls of fresh target explanations: every neuron for `reexplain: all`, "
        "an upper bound for `changed` (only neurons judged changed or born are explained; 0 when none "
        "are), 0 for `none` or the offline baseline.",
    )
    llm_calls_max: int = Field(
        ge=0,
        description="base.llm.calls + rescore_llm_calls + explanation_calls_max (fresh explanations' "
        "own simulation calls left out).",
    )


class CompareJobPayload(ContractModel):
    """Arguments of a compare job (:data:`COMPARE_TASK`): one layer and chunk of neurons of a comparison."""

    comparison_id: str = Field(description="The comparison (`cmp-…`) this job belongs to.")
    base: ExplainJobPayload = Field(description="The base's one-layer request (its reports are re-scored).")
    target: ExplainJobPayload = Field(description="The target's one-layer request (fresh explanations).")
    reexplain: Reexplain = Field(description="Which target neurons to explain afresh.")
    rule: VerdictRule = Field(description="The verdict rule's thresholds.")
    budget: Budget | None = Field(
        default=None,
        description="The comparison's budget: one pool, keyed on `comparison_id`, that the base's "
        "explanations draw on too.",
    )


class CompareJobResult(ContractModel):
    """What a compare job returns."""

    compared: int = Field(description="Neurons compared and stored.")
    explained: int = Field(description="Target neurons explained afresh.")
    verdicts: dict[str, int] = Field(description="Neurons per verdict.")
    usage: LLMUsage = Field(description="LLM usage (re-scoring and fresh explanations).")
    budget_exhausted: bool = Field(
        default=False, description="The budget refused some of this chunk's LLM work."
    )


def comparison_folder_key(comparison_id: str, layer: int) -> str:
    """Artifact-store folder of one layer's stored comparisons."""
    return f"{COMPARISON_ROOT}/{comparison_id}/L{layer}"


def comparison_key(comparison_id: str, layer: int, neuron: int) -> str:
    """Artifact-store key of one neuron's stored NeuronComparison."""
    return f"{comparison_folder_key(comparison_id, layer)}/{neuron}.json"


def comparison_exemplars_key(comparison_id: str, layer: int, neuron: int) -> str:
    """Artifact-store key of one neuron's stored ComparisonExemplars."""
    return f"{comparison_folder_key(comparison_id, layer)}/{neuron}.exemplars.json"


def comparison_request_key(request: ComparisonRequest) -> str:
    """Canonical JSON of a resolved request (what its id hashes). `units` only for latents: a comparison of
    neurons keeps the id it had before dictionaries existed."""
    left_out = {"dry_run"} | ({"units"} if request.units is None else set())
    return canonical_json(request.model_dump(mode="json", exclude=left_out))
