"""The public contract of NeuronLens: request, job and report models, and the model registry.

Pure pydantic (no Litestar, no torch), so workers import it to produce exactly what the API serves.
Every field carries its meaning, unit and range; the OpenAPI document is generated from these.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, model_validator

PIPELINE_VERSION = "0.1.0"
"""Version of scan + classification + explanation + scoring; part of every job id and report."""

SCAN_VERSION = "1"
"""Version of the scan artifact layout; part of the artifact key, so a change re-scans."""

BUNDLED_REGISTRY = Path(__file__).with_name("registry.json")

NeuronType = Literal["visual", "text", "multimodal", "unknown"]
Modality = Literal["text", "vision-language"]
JobState = Literal["queued", "scanning", "explaining", "simulating", "finished", "failed"]
Backend = Literal["baseline", "openai"]
"""Explainer and simulator backends: offline `baseline`, or `openai` (any OpenAI-compatible endpoint)."""

MAX_CANDIDATES = 10
"""Most candidate explanations one request may ask for (each costs a draw and its calibration calls)."""

ENDPOINT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What an endpoint name looks like: a name from settings, never a URL."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- registry


class HookPoint(_Model):
    """Where a neuron's activation is read inside one layer."""

    id: str = Field(description="Hook point id used in requests, e.g. `mlp_act`.")
    module: str = Field(
        description="Dotted module path with a `{layer}` placeholder, e.g. "
        "`encoder.layer.{layer}.intermediate`."
    )
    capture: Literal["output", "input"] = Field(description="Record the module's output or its first input.")
    description: str = Field(description="What this point is, in words.")


class ModelSource(_Model):
    """Where the weights come from. Nothing is ever downloaded for a model the registry does not list."""

    kind: Literal["python-package", "hub-or-path", "generated"] = Field(
        description="`python-package`: files shipped inside an installed package; "
        "`hub-or-path`: a local path or a hub id already in the local cache; "
        "`generated`: built locally from a config and a seed."
    )
    package: str | None = Field(default=None, description="Import name of the package (python-package).")
    subdir: str | None = Field(default=None, description="Folder inside the package holding the model files.")
    path: str | None = Field(default=None, description="Hub id or local path (hub-or-path).")


class PlantedNeuronSpec(_Model):
    """A neuron edited to respond to known inputs: ground truth of a test model (tiny-llava-planted)."""

    layer: int = Field(ge=0, description="Layer index of the planted neuron.")
    neuron: int = Field(ge=0, description="Neuron index within the layer.")
    type: NeuronType = Field(description="The type the classifier should find (DESIGN §4.4).")
    concept: str = Field(description="What fires it, in words.")


class ModelSpec(_Model):
    """One served model, as listed by `GET /v1/models`."""

    id: str = Field(description="Model id used in requests.")
    architecture: str = Field(
        description="Architecture family (`bert`, `llava`, …): selects loader and layout."
    )
    modality: Modality = Field(description="`text` or `vision-language`.")
    layers: int = Field(ge=1, description="Number of layers; valid layer indices are 0 … layers-1.")
    neurons_per_layer: int = Field(ge=1, description="MLP neurons per layer; valid indices 0 … n-1.")
    hook_points: list[HookPoint] = Field(
        min_length=1, description="Hook points offered; the first is default."
    )
    revision: str = Field(
        description="Weights revision (package version, commit or seed); part of every key."
    )
    source: ModelSource = Field(description="Where the weights come from.")
    datasets: list[str] = Field(
        min_length=1, description="Probe sets this model can be scanned on; first is default."
    )
    description: str = Field(default="", description="Free text for humans.")
    planted: list[PlantedNeuronSpec] | None = Field(
        default=None,
        description="Neurons with known ground truth (planted by editing the weights): where they are, their "
        "type and concept, so users can check the pipeline on them; null for ordinary models.",
    )

    @property
    def default_hook(self) -> str:
        return self.hook_points[0].id

    def hook(self, hook_id: str) -> HookPoint:
        for point in self.hook_points:
            if point.id == hook_id:
                return point
        raise KeyError(hook_id)


class DatasetSpec(_Model):
    """One probe set: a list of text or image+text samples."""

    id: str = Field(description="Dataset id used in requests.")
    modality: Modality = Field(description="`text` samples or `vision-language` (image + caption) samples.")
    revision: str = Field(description="Generator version or content hash; part of every scan key.")
    n_samples: int = Field(ge=1, description="Number of samples.")
    description: str = Field(default="", description="What the samples cover.")
    path: str | None = Field(
        default=None,
        description="User probe set file (local path or fsspec URL): JSONL of "
        '`{"text", "domain"?}` objects for text sets; for vision-language sets a COCO + LLaVA detail_23k '
        'JSON list of `{"id", "image", "conversations"}` with image paths relative to its folder. Null for '
        "the generated sets.",
    )


class Registry(_Model):
    """The models and probe sets this deployment serves (a JSON data file)."""

    models: list[ModelSpec]
    datasets: list[DatasetSpec]

    def model(self, model_id: str) -> ModelSpec:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise KeyError(model_id)

    def dataset(self, dataset_id: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.id == dataset_id:
                return spec
        raise KeyError(dataset_id)


def load_registry(path: Path | None = None) -> Registry:
    """Read the registry JSON (the bundled one when ``path`` is None)."""
    return Registry.model_validate(json.loads((path or BUNDLED_REGISTRY).read_text()))


# --------------------------------------------------------------------------- requests


class NeuronRange(_Model):
    """A half-open range of neuron indices, `start` ≤ i < `stop`."""

    start: int = Field(ge=0, description="First neuron index (inclusive).")
    stop: int = Field(ge=1, description="One past the last neuron index (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> NeuronRange:
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be greater than start ({self.start})")
        return self


class PipelineOptions(_Model):
    """Method parameters (DESIGN §4); defaults follow Xu et al. 2025 and Bills et al. 2023."""

    n_top: int = Field(default=50, ge=10, le=200, description="Top-activating samples kept per neuron (N).")
    n_explain: int = Field(
        default=20,
        ge=1,
        le=100,
        description="Top records shown to the explainer (drawn from the N top samples).",
    )
    n_holdout: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Held-out top records for scoring; the same number of random records is added (1:1).",
    )
    n_exemplars: int = Field(default=20, ge=1, le=200, description="Exemplars returned in the report.")
    visual_min_tokens: int = Field(
        default=4, ge=1, description="Visual tokens above threshold for a visual sample."
    )
    visual_threshold: float = Field(
        default=2.0, ge=0, le=10, description="Normalised (0–10) visual threshold."
    )
    text_min_tokens: int = Field(
        default=2, ge=1, description="Text tokens above threshold for a text sample."
    )
    text_threshold: float = Field(default=3.0, ge=0, le=10, description="Normalised (0–10) text threshold.")
    high_confidence: float = Field(
        default=0.8, ge=0, le=1, description="A type is high-confidence when its fraction exceeds this."
    )
    seed: int = Field(default=0, description="Seed for random records, splits and the bootstrap.")

    @model_validator(mode="after")
    def _fits(self) -> PipelineOptions:
        if self.n_explain + self.n_holdout > self.n_top:
            raise ValueError(
                f"n_explain + n_holdout ({self.n_explain} + {self.n_holdout}) "
                f"must not exceed n_top ({self.n_top})"
            )
        return self


class ExplanationRequest(_Model):
    """`POST /v1/explanations`: which neurons to explain, and how."""

    model: str = Field(description="Model id from `GET /v1/models`.")
    layer: int = Field(ge=0, description="Layer index, 0 … layers-1 of the model.")
    neurons: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] | NeuronRange = Field(
        description="Neuron indices as a list, or a `{start, stop}` range (stop exclusive)."
    )
    hook: str | None = Field(default=None, description="Hook point id; default: the model's first.")
    dataset: str | None = Field(default=None, description="Probe set id; default: the model's first.")
    explainer: Backend | None = Field(
        default=None,
        description="Explainer backend. Default: `openai` when the deployment configures an LLM endpoint, "
        "else `baseline` (offline).",
    )
    simulator: Backend | None = Field(
        default=None, description="Simulator backend; default as for `explainer`."
    )
    endpoint: str | None = Field(
        default=None,
        pattern=ENDPOINT_NAME_PATTERN,
        description="Name of a configured LLM endpoint for the `openai` backends (a name from the "
        "deployment's settings, never a URL). Default: the endpoint named `default`, else the first.",
    )
    candidates: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CANDIDATES,
        description=f"Candidate explanations k (1–{MAX_CANDIDATES}) the `openai` explainer draws; each is "
        "simulated on a calibration split and the best is returned with all candidates and their scores. "
        "Default: the deployment's `NEURONLENS_LLM_CANDIDATES`.",
    )
    options: PipelineOptions = Field(default_factory=PipelineOptions, description="Method parameters.")

    def neuron_list(self) -> list[int]:
        """The requested neuron indices, sorted and without repeats."""
        if isinstance(self.neurons, NeuronRange):
            return list(range(self.neurons.start, self.neurons.stop))
        return sorted(set(self.neurons))


class LLMModels(_Model):
    """The models behind a resolved request's `openai` backends, from its endpoint's settings."""

    explainer: str = Field(description="Explainer model name on the endpoint.")
    simulator: str = Field(
        description="Simulator model name on the endpoint (also scores candidates when k > 1)."
    )


class ExplanationAccepted(_Model):
    """202 answer: the job that will produce the reports."""

    job_id: str = Field(
        description="Deterministic job id: a hash of the canonical request and pipeline version."
    )
    status_url: str = Field(description="Where to poll: `/v1/jobs/{job_id}`.")


class Progress(_Model):
    done: int = Field(ge=0, description="Neurons finished.")
    total: int = Field(ge=0, description="Neurons requested.")


class JobError(_Model):
    type: str = Field(description="Error class, e.g. `ModelWeightsMissing`, `WorkerDied`, `JobTimeout`.")
    message: str = Field(description="What went wrong, in words; never a traceback.")


# --------------------------------------------------------------------------- report


class TypeEvidence(_Model):
    """Fractions of the top-N samples of each sample type (Xu et al. 2025, §4.4)."""

    p_visual: float = Field(ge=0, le=1, description="Share of top samples that are visual-activated only.")
    p_text: float = Field(ge=0, le=1, description="Share of top samples that are text-activated only.")
    p_multimodal: float = Field(ge=0, le=1, description="Share of top samples that are both.")
    p_unknown: float = Field(ge=0, le=1, description="Share of top samples that are neither.")
    n_samples: int = Field(ge=0, description="Top samples classified (N).")
    high_confidence: bool = Field(
        description="True when the winning share exceeds the high-confidence setting."
    )


class Exemplar(_Model):
    """One top-activating sample with this neuron's activation at each of its tokens."""

    sample_id: int = Field(ge=0, description="Index of the sample in the probe set.")
    rank: int = Field(ge=0, description="0 = the sample with the highest max activation.")
    kind: Literal["text", "image+text"] = Field(description="Sample kind.")
    tokens: list[str] = Field(description="Content tokens (special and template tokens removed).")
    activations: list[float] = Field(description="Raw activation at each token, same length as `tokens`.")
    activations_norm: list[float] = Field(
        description="clip(10·activation/max_activation, 0, 10), same length as `tokens`."
    )
    max_activation: float = Field(description="Largest raw activation in this sample.")
    image_url: str | None = Field(
        default=None, description="Shaded exemplar image (PNG), image samples only."
    )
    patch_grid: list[int] | None = Field(default=None, description="[rows, cols] of image patches.")
    patch_activations: list[float] | None = Field(
        default=None, description="Raw activation per patch, row-major."
    )


class Explanation(_Model):
    text: str = Field(description="One sentence: what the neuron finds.")
    backend: str = Field(description="`baseline` (offline, from activation statistics) or `openai`.")
    model: str = Field(description="Explainer model name (`baseline-v1` for the baseline).")
    prompt_version: str = Field(description="Version of the prompt or rule set that produced the text.")
    candidates: list[dict[str, object]] | None = Field(
        default=None, description="All candidate explanations with their calibration scores, when k > 1."
    )


class Simulation(_Model):
    """How well the explanation predicts real activations (Bills et al. 2023)."""

    correlation: float | None = Field(
        description="Pearson r pooled over every held-out token of top and random records, −1 … 1; "
        "null when undefined (see `null_reason`)."
    )
    null_reason: str | None = Field(default=None, description="Why `correlation` is null.")
    method: Literal["pooled-pearson"] = Field(description="Scoring method.")
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


class DatasetRef(_Model):
    id: str = Field(description="Probe set id.")
    revision: str = Field(description="Probe set revision.")
    n_samples: int = Field(ge=0, description="Samples scanned.")
    n_tokens: int = Field(ge=0, description="Content tokens scanned.")


class Provenance(_Model):
    pipeline_version: str = Field(description="NeuronLens pipeline version.")
    scan_id: str = Field(description="Artifact key of the scan the report was built from.")
    seed: int = Field(description="Seed used for random records, splits and bootstrap.")
    created_at: datetime = Field(description="When the report was written (UTC).")
    timings_s: dict[str, float] = Field(
        description="Seconds per stage for this neuron (explain, simulate, …)."
    )
    llm_tokens: dict[str, int] = Field(
        description="LLM tokens used (prompt, completion); 0 for the baseline."
    )
    llm_calls: dict[str, int] | None = Field(
        default=None,
        description="LLM requests made for this neuron by role (explainer, simulator), retries included; "
        "0 for the baseline.",
    )


class NeuronReport(_Model):
    """Everything NeuronLens knows about one neuron."""

    model: str = Field(description="Model id.")
    model_revision: str = Field(description="Weights revision.")
    layer: int = Field(ge=0, description="Layer index.")
    neuron: int = Field(ge=0, description="Neuron index within the layer.")
    hook: str = Field(description="Hook point id where the activation was read.")
    neuron_type: NeuronType = Field(description="Argmax of the type evidence.")
    type_evidence: TypeEvidence
    max_activation: float = Field(description="Largest raw activation seen over the whole probe set.")
    exemplars: list[Exemplar] = Field(description="Top-activating samples, highest first.")
    explanation: Explanation
    simulation: Simulation
    domains: dict[str, float] | None = Field(
        default=None,
        description="Share of tokens with activation > 0 per domain label, when samples carry them.",
    )
    domain_specific: list[str] | None = Field(
        default=None,
        description="Domains this neuron is specific to (MMNeuron, DESIGN §4.7): among the 1% of the "
        "layer's neurons with the lowest entropy of their normalised per-domain shares, those whose largest "
        "share is above the layer's 95th percentile of shares are specific to every domain above it. Empty "
        "when the neuron is not domain-specific; null when the probe set has no domain labels.",
    )
    dataset: DatasetRef
    provenance: Provenance


class JobStatus(_Model):
    """`GET /v1/jobs/{job_id}`."""

    job_id: str = Field(description="Job id.")
    status: JobState = Field(description="Current stage.")
    progress: Progress = Field(description="Neurons done out of requested.")
    queue_position: int | None = Field(
        default=None, description="0-based position in its queue while queued; null otherwise."
    )
    created_at: datetime | None = Field(default=None, description="When the job was enqueued (UTC).")
    started_at: datetime | None = Field(default=None, description="When a worker started it (UTC).")
    ended_at: datetime | None = Field(default=None, description="When it finished or failed (UTC).")
    error: JobError | None = Field(default=None, description="Why it failed; only when status is `failed`.")
    reports: list[NeuronReport] | None = Field(
        default=None, description="The reports (a page of them, see `reports_total`) once finished."
    )
    reports_total: int | None = Field(
        default=None, description="Number of reports the finished job produced."
    )


# --------------------------------------------------------------------------- storage keys (API ↔ workers)


def canonical_json(obj: object) -> str:
    """JSON with sorted keys and no spaces: the form that is hashed for ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def dataset_identity(dataset: DatasetSpec) -> dict[str, object]:
    """Everything of a probe set that changes what is recorded from it (the description does not)."""
    return dataset.model_dump(mode="json", exclude={"description"})


def _backend_identity(request: ExplanationRequest, models: LLMModels | None) -> dict[str, object]:
    """Which explainer and simulator, on which endpoint and models, with how many candidates."""
    if models is None and "openai" in (request.explainer, request.simulator):
        raise ValueError("an `openai` backend needs the endpoint's model names to compute the report variant")
    explainer: dict[str, object] = {"backend": request.explainer}
    simulator: dict[str, object] = {"backend": request.simulator}
    if request.explainer == "openai" and models is not None:
        explainer.update(endpoint=request.endpoint, model=models.explainer, candidates=request.candidates)
        if (request.candidates or 1) > 1:
            explainer["calibration_model"] = models.simulator
    if request.simulator == "openai" and models is not None:
        simulator.update(endpoint=request.endpoint, model=models.simulator)
    return {"explainer": explainer, "simulator": simulator}


def report_variant(
    request: ExplanationRequest, *, revision: str, dataset: DatasetSpec, models: LLMModels | None
) -> str:
    """Short hash of everything besides (model, layer, neuron) that changes a report: weights revision,
    hook, probe set (id, revision, size), backends with their endpoint, model names and k, options and
    pipeline version. ``request`` must be resolved (hook, dataset, explainer, simulator set)."""
    if None in (request.hook, request.dataset, request.explainer, request.simulator):
        raise ValueError(
            "resolve the request (hook, dataset, explainer, simulator) before its report variant"
        )
    if request.dataset != dataset.id:
        raise ValueError(f"request names probe set {request.dataset!r} but {dataset.id!r} was given")
    payload = {
        "revision": revision,
        "hook": request.hook,
        "dataset": dataset_identity(dataset),
        **_backend_identity(request, models),
        "options": request.options.model_dump(mode="json"),
        "pipeline": PIPELINE_VERSION,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def report_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Redis key under which the explain worker stores a NeuronReport as JSON."""
    return f"nl:report:{model}:{layer}:{neuron}:{variant}"


EXEMPLAR_IMAGE_ROOT = "images"
"""Artifact-store folder of shaded exemplar images (written by explain workers, read by the API)."""

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def exemplar_images_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Artifact-store key (a folder with a manifest) of one report's shaded exemplar images."""
    return f"{EXEMPLAR_IMAGE_ROOT}/{_KEY_UNSAFE.sub('_', model)}/L{layer}/N{neuron}/{variant}"


def exemplar_image_name(rank: int) -> str:
    """File name of the exemplar of `rank` inside its `exemplar_images_key` folder."""
    return f"{rank}.png"


def exemplar_query(request: ExplanationRequest, variant: str) -> dict[str, str]:
    """Query parameters that select a resolved request's report variant in `GET /v1/neurons/…` and its
    exemplar images: hook, dataset and backends (endpoint and k for `openai`); `variant` itself too when
    the request's options are not the defaults, since a lookup otherwise assumes default options."""
    query = {
        name: str(value)
        for name in ("hook", "dataset", "explainer", "simulator", "endpoint", "candidates")
        if (value := getattr(request, name)) is not None
    }
    if request.options != PipelineOptions():
        query["variant"] = variant
    return query


def exemplar_image_url(request: ExplanationRequest, neuron: int, rank: int, variant: str) -> str:
    """API path of an exemplar's shaded PNG, with the query of its report variant."""
    model = quote(request.model, safe="")
    path = f"/v1/neurons/{model}/{request.layer}/{neuron}/exemplars/{exemplar_image_name(rank)}"
    return f"{path}?{urlencode(exemplar_query(request, variant))}"
