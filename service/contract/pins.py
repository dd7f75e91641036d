"""Pins: what must hold of a model's units, checked by `POST /v1/checks` (and `neuronlens check`), so a CI
build can fail when a new checkpoint loses a neuron it relies on.

A pin file (YAML or JSON, :class:`PinFile`) names a model (optional: the command line's `--model` overrides
it), where its neurons are read (hook, probe set, options), the simulator that re-scores, and the pins: per
unit (layer, neuron) an explanation and what must hold of it — its type, a minimum score, a maximum drop
from the score it was pinned with. A check re-scores each pinned explanation on the named model's own
held-out records (simulation only; nothing is explained anew) and answers per pin pass or fail with the
numbers (:class:`CheckStatus`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from service.contract.base import ContractModel, NeuronType
from service.contract.jobs import JobError, LLMUsage
from service.contract.options import PipelineOptions
from service.contract.requests import (
    ENDPOINT_NAME_PATTERN,
    MAX_NAME_LENGTH,
    BackendField,
    Budget,
    Index,
    LLMModels,
)

PIN_FILE_VERSION = 1
"""Version of the pin file layout (`version` of a pin file)."""

MAX_PINS = 1024
"""Most pins one file or check may carry."""

MAX_EXPLANATION_CHARS = 2000
"""Longest explanation a pin may carry, in characters."""

CHECK_JOB_PREFIX = "chk-"
"""Every check id starts with this (then a hash of the canonical resolved check)."""

CHECK_JOB_ID_PATTERN = r"^chk-[0-9a-f]{24}$"
"""What a check id looks like: anything else names no check (a 404)."""

CHECK_TASK = "workers.process.tasks.run_check_job"
"""Dotted path of the RQ entry point that re-scores a check's pins (on the explain queue)."""

Score = Annotated[float, Strict(), Field(ge=-1.0, le=1.0)]
"""A correlation score, -1 … 1 (a JSON number)."""

CheckState = Literal["queued", "scanning", "checking", "finished", "failed"]
"""Where a check stands: waiting, its layers' scan running, re-scoring, done (every pin answered), failed."""


class Pin(ContractModel):
    """One unit and what must hold of it. At least one of `type`, `min_score` and `max_score_drop`."""

    layer: Index = Field(description="Layer index, 0 … layers-1 of the model.")
    neuron: Index = Field(description="Neuron index within the layer (a latent's index with `units`).")
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description='Name of the pin in results and JUnit XML; default "<model> L<layer> N<neuron>" '
        '("<model> <units> L<layer> N<neuron>" for a latent).',
    )
    explanation: str = Field(
        min_length=1,
        max_length=MAX_EXPLANATION_CHARS,
        description="The explanation re-scored: simulated on the model's held-out records of this neuron.",
    )
    type: NeuronType | None = Field(
        default=None,
        description="Expected neuron type (`text`, `visual`, `multimodal`, `unknown`); null: not checked.",
    )
    min_score: Score | None = Field(
        default=None,
        description="Least score (pooled Pearson r of simulated and true activations, -1 … 1) the "
        "explanation must reach; an undefined score fails it. Null: not checked.",
    )
    max_score_drop: Annotated[float, Strict(), Field(ge=0.0, le=2.0)] | None = Field(
        default=None,
        description="Most the score may fall below `base_score` (0 … 2, in units of r); needs "
        "`base_score`. Null: not checked.",
    )
    base_score: Score | None = Field(
        default=None,
        description="The score the explanation had when pinned (e.g. the report's `simulation.correlation`); "
        "the reference of `max_score_drop`, shown otherwise.",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Pin:
        if self.type is None and self.min_score is None and self.max_score_drop is None:
            raise ValueError("a pin checks something: give type, min_score or max_score_drop")
        if self.max_score_drop is not None and self.base_score is None:
            raise ValueError("max_score_drop needs base_score (the score the pin was written with)")
        return self

    def title(self, model: str) -> str:
        """The pin's name, or `<model> L<layer> N<neuron>`."""
        return self.name or f"{model} L{self.layer} N{self.neuron}"


class PinSet(ContractModel):
    """What a pin file and a check request share: where the units are read and how they are re-scored."""

    hook: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Hook point id; default: the model's first (with `units`, the dictionary's own).",
    )
    units: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="The unit basis of every pin: `neurons` (the default) or a dictionary id of the model "
        "(`GET /v1/models`: `dictionaries`): each pin's `neuron` is then a latent of it, re-scored on the "
        "latents' scan (docs/dictionaries.md).",
    )
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Probe set whose held-out records re-score the pins; default: the model's first.",
    )
    simulator: BackendField = Field(
        default=None,
        description="Simulator backend (`baseline` offline, `openai`); default: `openai` when the deployment "
        "configures an LLM endpoint, else `baseline`.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=ENDPOINT_NAME_PATTERN,
        json_schema_extra={"pattern": ENDPOINT_NAME_PATTERN},
        description="Named LLM endpoint of the deployment for the `openai` simulator (a name, never a URL).",
    )
    options: PipelineOptions = Field(
        default_factory=PipelineOptions,
        description="Method parameters (scale, held-out split, typing thresholds, seed): those the pinned "
        "scores were measured with, so the records are selected alike.",
    )
    pins: Annotated[list[Pin], Field(min_length=1, max_length=MAX_PINS)] = Field(
        description=f"The pins, 1 … {MAX_PINS}."
    )

    def layer_list(self) -> list[int]:
        """The pinned layers, sorted without repeats."""
        return sorted({pin.layer for pin in self.pins})


class PinFile(PinSet):
    """A pin file (YAML or JSON): `neuronlens check PINS --model M` sends it as a `POST /v1/checks`."""

    version: Literal[1] = Field(default=1, description="Pin file layout version (1).")
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Model id the pins hold on; `--model` overrides it (a CI job checks each new "
        "checkpoint against the same file).",
    )


class CheckRequest(PinSet):
    """`POST /v1/checks`: re-score pinned explanations on a model and answer per pin pass or fail."""

    model: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="Model id from `GET /v1/models`."
    )
    dry_run: Annotated[bool, Strict()] = Field(
        default=False,
        description="Answer 200 with the estimate (LLM calls of the simulator, layers to scan); enqueue "
        "nothing.",
    )
    budget: Budget | None = Field(
        default=None,
        description="Stop re-scoring when the `openai` simulator has made this many calls or spent this "
        "much; the pins not scored fail with that reason.",
    )


class CheckAccepted(ContractModel):
    """202 answer of `POST /v1/checks`."""

    check_id: str = Field(description="Deterministic check id: a hash of the canonical resolved check.")
    status_url: str = Field(description="Where to poll: `/v1/checks/{check_id}`.")


class CheckEstimate(ContractModel):
    """`POST /v1/checks` with `dry_run: true`: what the check would cost; nothing is enqueued."""

    model: str = Field(description="Model id.")
    pins: int = Field(ge=0, description="Pins the check re-scores.")
    layers: list[int] = Field(description="Layers the pins name.")
    layers_to_scan: list[int] = Field(description="Of those, layers whose scan is not stored yet.")
    llm_calls: int = Field(
        ge=0,
        description="LLM requests of the simulator, retries left out: per pin one per held-out record (top "
        "and random) for `openai`, 0 for the `baseline`.",
    )
    simulator: str = Field(description="Simulator backend the check would use.")
    endpoint: str | None = Field(default=None, description="LLM endpoint it would use (openai only).")


class PinResult(ContractModel):
    """One pin checked: pass or fail, with the numbers and why it failed."""

    name: str = Field(description='The pin\'s name, or "<model> L<layer> N<neuron>".')
    pin: Pin = Field(description="The pin as given.")
    passed: bool = Field(description="Every condition of the pin holds.")
    score: float | None = Field(
        default=None,
        description="The explanation's score on this model: pooled Pearson r (-1 … 1) of simulated and true "
        "activations on the neuron's held-out records; null when undefined (constant activations) or not "
        "scored.",
    )
    score_drop: float | None = Field(
        default=None, description="`base_score` − `score` (positive: worse); null without both."
    )
    neuron_type: NeuronType | None = Field(
        default=None, description="The neuron's type on this model (as its report would give it)."
    )
    failures: list[str] = Field(
        default_factory=list, description="Why the pin failed, one sentence per condition not met."
    )
    llm_calls: int = Field(default=0, ge=0, description="LLM requests its re-scoring made.")


class CheckJobPayload(ContractModel):
    """Arguments of a check job (:data:`CHECK_TASK`)."""

    request: CheckRequest = Field(description="The resolved check: hook, dataset and simulator set.")
    check_id: str = Field(description="The check's id (its budget counters are keyed on it).")
    llm_models: LLMModels | None = Field(
        default=None, description="The endpoint's model names as the API resolved them (openai only)."
    )
    model_revision: str = Field(description="Weights revision the API resolved.")
    units_revision: str | None = Field(
        default=None, description="With `units`: the dictionary's registry revision the API resolved."
    )


class CheckJobResult(ContractModel):
    """What a check job returns: per pin its result, in the order of the request's pins."""

    results: list[PinResult] = Field(description="One result per pin, in the request's order.")
    model_revision: str = Field(description="Weights revision checked.")
    usage: LLMUsage = Field(description="LLM requests and cost of the re-scoring.")
    budget_exhausted: bool = Field(description="The budget stopped the re-scoring before every pin.")


class CheckStatus(ContractModel):
    """`GET /v1/checks/{check_id}`: where a check stands and, once finished, every pin's result."""

    check_id: str = Field(description="Check id.")
    status: CheckState = Field(description="Where the check stands.")
    model: str = Field(description="Model id checked.")
    model_revision: str | None = Field(default=None, description="Weights revision checked.")
    passed: bool | None = Field(default=None, description="Every pin passed; null until the check finishes.")
    pins_total: int = Field(ge=0, description="Pins in the check.")
    pins_failed: int | None = Field(
        default=None, ge=0, description="Pins that failed; null until the check finishes."
    )
    results: list[PinResult] | None = Field(
        default=None, description="Per pin, in the request's order, once finished."
    )
    error: JobError | None = Field(default=None, description="Why the check failed; only when `failed`.")
    usage: LLMUsage | None = Field(default=None, description="LLM requests and cost, once finished.")
    budget_exhausted: bool = Field(
        default=False, description="The budget stopped the re-scoring: the pins not scored failed."
    )
    created_at: datetime | None = Field(default=None, description="When the check was enqueued (UTC).")
    ended_at: datetime | None = Field(default=None, description="When it finished or failed (UTC).")
