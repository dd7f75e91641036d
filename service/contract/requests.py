"""What a client asks for: `POST /v1/explanations` and its 202 answer, with the limits they obey (the
method parameters, its `options`, are service/contract/options.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, JsonValue, Strict, model_validator

from service.contract.base import ContractModel, StrictFloat, StrictInt
from service.contract.options import PipelineOptions


# An enum class rather than a Literal so OpenAPI names it once (`Backend`) and the nullable fields refer to
# it (one enum class in generated clients, not three per field); members are str, so they compare, hash
# and serialise exactly as the plain values.
class Backend(StrEnum):
    """Explainer and simulator backends: offline `baseline`, or `openai` (any OpenAI-compatible endpoint)."""

    BASELINE = "baseline"
    OPENAI = "openai"


MAX_CANDIDATES = 10
"""Most candidate explanations one request may ask for (each costs a draw and its calibration calls)."""

ENDPOINT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What an endpoint name looks like: a name from settings, never a URL."""

MAX_INDEX = 2**31 - 1
"""Largest layer or neuron index a request may carry (the model's own range is checked after)."""

MAX_NEURON_IDS = 65_536
"""Longest neuron list a request may carry, repeats included (settings may allow fewer per request)."""

MAX_LAYER_IDS = 1024
"""Longest layer list a request may carry (the model's own layer count is checked after)."""

MAX_SHARDS = 64
"""Most shards one scan may be split into (one scan worker each)."""

MAX_NAME_LENGTH = 128
"""Longest model, hook or probe set id a request may name."""

Index = Annotated[int, Strict(), Field(ge=0, le=MAX_INDEX)]
"""A layer or neuron index in a request: 0 … 2**31-1, a JSON integer."""


class NeuronRange(ContractModel):
    """A half-open range of neuron indices, `start` ≤ i < `stop`."""

    start: StrictInt = Field(ge=0, le=MAX_INDEX, description="First neuron index (inclusive).")
    stop: StrictInt = Field(ge=1, le=MAX_INDEX, description="One past the last neuron index (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> NeuronRange:
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be greater than start ({self.start})")
        return self


_NEURONS_ONE_OF: list[JsonValue] = [
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
        "minItems": 1,
        "maxItems": MAX_NEURON_IDS,
    },
    {"$ref": "#/components/schemas/NeuronRange"},
    {"type": "string", "enum": ["all"]},
]
"""OpenAPI form of `ExplanationRequest.neurons`: a bounded list of indices, a range, or `"all"`."""


def _backend_from_name(value: object) -> object:
    """A backend named by its string (as JSON gives it) becomes the enum member before strict validation
    (the API validates bodies strictly, and a strict enum field takes only members)."""
    if isinstance(value, str) and not isinstance(value, Backend):
        if value not in Backend._value2member_map_:
            raise ValueError(f"Input should be {' or '.join(repr(b.value) for b in Backend)}")
        return Backend(value)
    return value


BackendField = Annotated[Backend | None, BeforeValidator(_backend_from_name)]
"""An optional backend, accepted by name in strict validation too."""

ALL: Literal["all"] = "all"
"""`layers: "all"` and `neurons: "all"`: every layer, or every neuron of each requested layer."""

_LAYERS_ONE_OF: list[JsonValue] = [
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
        "minItems": 1,
        "maxItems": MAX_LAYER_IDS,
    },
    {"type": "string", "enum": ["all"]},
    {"type": "null"},
]
"""OpenAPI form of `ExplanationRequest.layers`: a bounded list of layer indices, `"all"`, or null."""


class Budget(ContractModel):
    """Limits on what the `openai` backends may spend for one request; the job stops cleanly when one is
    reached (`finished` with `budget_exhausted`, every completed report kept)."""

    max_llm_calls: StrictInt | None = Field(
        default=None, ge=1, le=2**40, description="Most LLM requests the job may make (retries included)."
    )
    max_cost_usd: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=1e9,
        description="Most the job may spend in USD, priced with the endpoint's configured prices "
        "(requires them).",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.max_llm_calls is None and self.max_cost_usd is None:
            raise ValueError("a budget names max_llm_calls, max_cost_usd or both")
        return self


MAX_CALLBACK_URL_LENGTH = 2048
"""Longest `callback_url`, characters."""


class ExplanationRequest(ContractModel):
    """`POST /v1/explanations`: which neurons to explain, and how."""

    model: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="Model id from `GET /v1/models`."
    )
    layer: Index | None = Field(
        default=None,
        description="Layer index, 0 … layers-1 of the model. Give `layer` or `layers`, not both.",
    )
    layers: Annotated[list[Index], Field(min_length=1, max_length=MAX_LAYER_IDS)] | Literal["all"] | None = (
        Field(
            default=None,
            json_schema_extra={"one_of": _LAYERS_ONE_OF},
            description='Several layers (a list; repeats count once) or `"all"` of them, explained with '
            "the same neurons and options: their scans run as one forward pass over the probe set (as "
            "few passes as the scan memory budget allows). Give `layer` or `layers`, not both.",
        )
    )
    neurons: (
        Annotated[list[Index], Field(min_length=1, max_length=MAX_NEURON_IDS)] | NeuronRange | Literal["all"]
    ) = Field(
        # Litestar drops the list's bounds from a union in OpenAPI; they are spelled out for it here.
        json_schema_extra={"one_of": _NEURONS_ONE_OF},
        description="Neuron indices as a list (repeats count once; at most "
        f'{MAX_NEURON_IDS:,} entries), a `{{start, stop}}` range (stop exclusive), or `"all"` (every '
        "neuron of the layer). At most `NEURONLENS_MAX_NEURONS_PER_REQUEST` distinct neurons per layer.",
    )
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
        description="The unit basis: `neurons` (the default: the model's neurons at the hook point) or a "
        "dictionary id of the model (`GET /v1/models`: `dictionaries`), whose latents are then the units "
        "`neurons` indexes (docs/dictionaries.md). Latents are recorded at the dictionary's hook point.",
    )
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Probe set id; default: the model's first.",
    )
    explainer: BackendField = Field(
        default=None,
        description="Explainer backend. Default: `openai` when the deployment configures an LLM endpoint, "
        "else `baseline` (offline).",
    )
    simulator: BackendField = Field(
        default=None, description="Simulator backend; default as for `explainer`."
    )
    endpoint: str | None = Field(
        default=None,
        pattern=ENDPOINT_NAME_PATTERN,
        json_schema_extra={"pattern": ENDPOINT_NAME_PATTERN},  # kept by OpenAPI on an optional field
        description="Name of a configured LLM endpoint for the `openai` backends (a name from the "
        "deployment's settings, never a URL). Default: the endpoint named `default`, else the first.",
    )
    candidates: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_CANDIDATES,
        description=f"Candidate explanations k (1–{MAX_CANDIDATES}) the `openai` explainer draws; each is "
        "simulated on a calibration split and the best is returned with all candidates and their scores. "
        "Default: the deployment's `NEURONLENS_LLM_CANDIDATES`.",
    )
    options: PipelineOptions = Field(default_factory=PipelineOptions, description="Method parameters.")
    shards: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_SHARDS,
        description="Split each scan of this request into this many shards of the probe set, run by as "
        "many scan workers and merged exactly. Default: the deployment's `NEURONLENS_SCAN_SHARDS` (1).",
    )
    dry_run: Annotated[bool, Strict()] = Field(
        default=False,
        description="Answer 200 with the cost estimate (scan passes and tokens, LLM calls, prompt and "
        "completion tokens, USD where the endpoint's prices are configured) and enqueue nothing.",
    )
    budget: Budget | None = Field(
        default=None,
        description="Stop the job cleanly when it has made this many LLM calls or spent this much.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_CALLBACK_URL_LENGTH,
        description="An `http(s)` URL that gets a signed webhook (Standard Webhooks) when the job ends: "
        "`job.finished`, `job.failed` or `job.cancelled`. Only hosts the deployment allows "
        "(`NEURONLENS_WEBHOOK_ALLOWED_HOSTS`); never link-local or metadata addresses (else 422). Not part "
        "of the job's identity: requests that differ only here share one job, and each URL gets its webhook.",
    )

    @model_validator(mode="after")
    def _one_layer_field(self) -> ExplanationRequest:
        if (self.layer is None) == (self.layers is None):
            raise ValueError(
                'give `layer` (one layer) or `layers` (a list, or "all"), not both and not neither'
            )
        return self

    def neuron_list(self) -> list[int]:
        """The requested neuron indices, sorted and without repeats. A request naming `"all"` must be
        resolved first (the model knows how many neurons a layer has)."""
        if isinstance(self.neurons, NeuronRange):
            return list(range(self.neurons.start, self.neurons.stop))
        if self.neurons == ALL:
            raise ValueError('neurons "all" is resolved against the model first (service.estimates.validate)')
        return sorted(set(self.neurons))

    def layer_list(self) -> list[int]:
        """The requested layers, sorted and without repeats (`layer`, or `layers`). A request naming
        `"all"` must be resolved first."""
        if self.layers is None:
            assert self.layer is not None  # the validator above
            return [self.layer]
        if self.layers == ALL:
            raise ValueError('layers "all" is resolved against the model first (service.estimates.validate)')
        return sorted(set(self.layers))

    def only_layer(self) -> int:
        """The layer of a one-layer request (what every explain job runs); ValueError otherwise."""
        if self.layer is None:
            raise ValueError("a request naming `layers` is split into one-layer requests first (for_layer)")
        return self.layer

    def for_layer(self, layer: int, neurons: list[int]) -> ExplanationRequest:
        """The one-layer request of ``layer`` and ``neurons`` of this (resolved) request: what one explain
        job of it runs. Request-level fields (layers, shards, dry run, budget) are left out."""
        return self.model_copy(
            update={
                "layer": layer,
                "layers": None,
                "neurons": neurons,
                "shards": None,
                "dry_run": False,
                "budget": None,
                "callback_url": None,
            }
        )


class LLMModels(ContractModel):
    """The models behind a resolved request's `openai` backends, from its endpoint's settings."""

    explainer: str = Field(description="Explainer model name on the endpoint.")
    simulator: str = Field(
        description="Simulator model name on the endpoint (also scores candidates when k > 1)."
    )


class ExplanationAccepted(ContractModel):
    """202 answer: the job that will produce the reports."""

    job_id: str = Field(
        description="Deterministic job id: a hash of the canonical request and pipeline version."
    )
    status_url: str = Field(description="Where to poll: `/v1/jobs/{job_id}`.")
