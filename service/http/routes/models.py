"""`GET /v1/models`: what this deployment serves; `GET /v1/models/{model}/dictionaries/{dictionary}`: how
well one of its dictionaries reconstructs, and how its latents fire."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from service.contract import MAX_NAME_LENGTH, DictionaryQuality, ModelSpec, Registry
from service.estimates.validate import resolve_dataset, resolve_neuron_path
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.problems import FieldProblem, NotFound
from service.reports.dictionary_quality import dictionary_quality
from service.reports.reading import ReportReader


@get(
    "/v1/models",
    operation_id="listModels",
    operation_class=DocumentedOperation,
    summary="List served models",
    tags=["models"],
    sync_to_thread=False,
    responses=problem_specs(503),
)
def list_models(registry: NamedDependency[Registry]) -> list[ModelSpec]:
    """List the served models: layers, neurons per layer, hook points (the first is the default), weights
    revision, and the probe sets each can be scanned on (the first is the default)."""
    return registry.models


@get(
    "/v1/models/{model:str}/dictionaries/{dictionary:str}",
    operation_id="getDictionaryQuality",
    operation_class=DocumentedOperation,
    summary="Get a dictionary's reconstruction quality and latent density",
    tags=["models"],
    sync_to_thread=True,
    responses=problem_specs(400, 404, 422, 503),
)
def get_dictionary_quality(
    model: FromPath[str],
    dictionary: FromPath[str],
    reports: NamedDependency[ReportReader],
    dataset: str | None = Parameter(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Probe set id; default: the model's first.",
    ),
) -> DictionaryQuality:
    """A dictionary (SAE or transcoder) of a model, with what its users check first, per layer, on a probe
    set: the fraction of variance its reconstruction leaves unexplained (for transcoders, of the output it
    predicts), and how many latents are dead (never active) or dense (active on more than 10% of tokens),
    with quantiles of the latents' activation density. A layer whose latents have not been scanned yet
    (`POST /v1/explanations` with `units`) says `scanned: false`."""
    registry = reports.registry
    spec = resolve_neuron_path(registry, model, 0, 0)
    try:
        seen = spec.through(dictionary)
    except KeyError:
        offered = ", ".join(d.id for d in spec.dictionaries) or "none"
        message = f"dictionary {dictionary!r} is not a dictionary of {model}: it has {offered}"
        raise NotFound(message, [FieldProblem(field="dictionary", message=message)]) from None
    probe = resolve_dataset(registry, seen, dataset)
    return dictionary_quality(reports.store, seen, probe)
