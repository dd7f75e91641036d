"""Job payloads parsed once into resolved jobs, checked against the worker's own registry.

Each RQ task (workers/process/tasks.py) gets its typed payload (``contract.ScanJobPayload``,
``ScanShardJobPayload``, ``MergeScanJobPayload``, ``ExplainJobPayload``) as the JSON dump of its one
``payload`` keyword argument. The API validated the request against its registry before enqueueing; a
worker checks the payload again at its own trust boundary, once, here: the payload's shape
(:func:`read_payload`, InvalidRequest), that its registry serves the model and probe set (UnknownModel,
DatasetUnavailable), the ranges of layer, hook and neurons (InvalidRequest), and that it resolves the
request as the API did (DeploymentMismatch). The domain functions then take these resolved jobs and do not
check again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import pydantic

from service.contract import (
    CheckJobPayload,
    CheckRequest,
    DatasetSpec,
    ExplainJobPayload,
    ExplanationRequest,
    HookPoint,
    LLMModels,
    ModelSpec,
    PipelineOptions,
    Registry,
    ScanJobPayload,
    report_key,
    report_variant,
)
from workers.errors import DatasetUnavailable, DeploymentMismatch, InvalidRequest, UnknownModel
from workers.llm.endpoints import LLMEndpoints
from workers.models.range_checks import check_dataset, check_hook, check_layer, check_neurons

Payload = TypeVar("Payload", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class ScanJob:
    """A scan job's payload, resolved: layers of a model at a hook point over a probe set."""

    model: ModelSpec
    dataset: DatasetSpec
    point: HookPoint
    layers: list[int]
    """Sorted, without repeats."""
    options: PipelineOptions


@dataclass(frozen=True)
class ExplainJob:
    """An explain job's payload, resolved: the request (hook, dataset and backends set), its specs, and
    where each neuron's report goes under this worker's report variant."""

    request: ExplanationRequest
    model: ModelSpec
    dataset: DatasetSpec
    point: HookPoint
    neurons: list[int]
    """The requested neuron indices, sorted, without repeats."""
    variant: str
    """The report variant (``contract.report_variant``), computed once for the job."""
    report_keys: dict[int, str]
    """Artifact-store key (`contract.report_key`) of each neuron's report."""

    @property
    def llm_endpoint(self) -> str | None:
        """The endpoint name the request's `openai` backends use; None when both are the baseline."""
        return self.request.endpoint if "openai" in (self.request.explainer, self.request.simulator) else None


def read_payload(model_class: type[Payload], payload: object, what: str) -> Payload:
    """The typed ``payload`` (a JSON dump of a ``model_class``); InvalidRequest naming the first field
    that does not validate."""
    try:
        return model_class.model_validate(payload)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or what
        raise InvalidRequest(f"invalid {what} payload: {where}: {first['msg']}") from None


def _specs(
    registry: Registry, model_id: str, dataset_id: str, units: str | None = None
) -> tuple[ModelSpec, DatasetSpec]:
    """The model (seen through ``units``: its neurons, or a dictionary's latents) and the probe set."""
    try:
        model = registry.model(model_id)
    except KeyError:
        served = ", ".join(m.id for m in registry.models)
        raise UnknownModel(f"model '{model_id}' is not in this worker's registry: it has {served}") from None
    try:
        model = model.through(units)
    except KeyError:
        raise UnknownModel(
            f"model '{model_id}' has no dictionary '{units}' in this worker's registry"
        ) from None
    try:
        dataset = registry.dataset(dataset_id)
    except KeyError:
        known = ", ".join(d.id for d in registry.datasets)
        raise DatasetUnavailable(
            f"dataset '{dataset_id}' is not in this worker's registry: it has {known}"
        ) from None
    check_dataset(model, dataset.id)
    return model, dataset


def parse_scan_job(registry: Registry, payload: ScanJobPayload) -> ScanJob:
    """The scan job of a scan, scan shard or merge payload, checked against ``registry``."""
    model_spec, dataset_spec = _specs(registry, payload.model, payload.dataset, payload.units)
    for layer in payload.layers:
        check_layer(model_spec, layer)
    point = check_hook(model_spec, payload.hook)
    return ScanJob(model_spec, dataset_spec, point, sorted(set(payload.layers)), payload.options)


def llm_models(endpoints: LLMEndpoints, request: ExplanationRequest) -> LLMModels | None:
    """This worker's model names for the request's endpoint (UnknownLLMEndpoint when it has no such one);
    None when no backend of the request is `openai`."""
    if "openai" not in (request.explainer, request.simulator):
        return None
    endpoint = endpoints.resolve(request.endpoint)
    return LLMModels(explainer=endpoint.explainer_model, simulator=endpoint.simulator_model)


def parse_explain_job(registry: Registry, endpoints: LLMEndpoints, payload: ExplainJobPayload) -> ExplainJob:
    """The explain job of an explain payload: the request the API resolved, with the API's endpoint model
    names and report variant (when given), which this worker's settings and registry must reproduce
    (DeploymentMismatch otherwise, so a worker configured unlike the API stores nothing)."""
    parsed = payload.request
    api_variant = payload.variant
    if parsed.hook is None or parsed.dataset is None or parsed.explainer is None or parsed.simulator is None:
        raise InvalidRequest(
            "the explain payload must name its hook, dataset, explainer and simulator (the API resolves them)"
        )
    model, dataset = _specs(registry, parsed.model, parsed.dataset, parsed.units)
    check_layer(model, parsed.only_layer())
    point = check_hook(model, parsed.hook)
    neurons = parsed.neuron_list()
    check_neurons(model, neurons)
    models = llm_models(endpoints, parsed)
    expected = payload.llm_models
    if expected is not None and models != expected:
        raise DeploymentMismatch(
            f"LLM endpoint '{parsed.endpoint}' on this worker uses explainer model "
            f"'{models.explainer if models else None}' and simulator model "
            f"'{models.simulator if models else None}', but the API resolved '{expected.explainer}' and "
            f"'{expected.simulator}': give the API and the workers the same NEURONLENS_LLM_* settings"
        )
    variant = report_variant(parsed, revision=model.key_revision, dataset=dataset, models=models)
    if api_variant is not None and variant != api_variant:
        raise DeploymentMismatch(
            f"this worker's registry entry for {model.id} (revision {model.revision}) or probe set "
            f"{dataset.id} (revision {dataset.revision}, {dataset.n_samples} samples) differs from the "
            "API's: give the API and the workers the same registry"
        )
    keys = {n: report_key(model.id, parsed.only_layer(), n, variant) for n in neurons}
    return ExplainJob(parsed, model, dataset, point, neurons, variant, keys)


@dataclass(frozen=True)
class CheckJob:
    """A check job's payload, resolved: the check (hook, dataset and simulator set) and its specs."""

    request: CheckRequest
    model: ModelSpec
    dataset: DatasetSpec
    point: HookPoint
    check_id: str


def parse_check_job(registry: Registry, endpoints: LLMEndpoints, payload: CheckJobPayload) -> CheckJob:
    """The check job of a check payload, checked against ``registry``: the API's model revision and
    endpoint model names must be this worker's (DeploymentMismatch otherwise)."""
    request = payload.request
    if request.hook is None or request.dataset is None or request.simulator is None:
        raise InvalidRequest(
            "the check payload must name its hook, dataset and simulator (the API resolves them)"
        )
    model, dataset = _specs(registry, request.model, request.dataset, request.units)
    point = check_hook(model, request.hook)
    for pin in request.pins:
        check_layer(model, pin.layer)
        check_neurons(model, [pin.neuron])
    if model.revision != payload.model_revision:
        raise DeploymentMismatch(
            f"this worker's registry has {model.id} at revision {model.revision}, the API resolved "
            f"{payload.model_revision}: give the API and the workers the same registry"
        )
    units_revision = model.units.revision if model.units is not None else None
    if units_revision != payload.units_revision:
        raise DeploymentMismatch(
            f"this worker's registry has dictionary {request.units} of {model.id} at revision "
            f"{units_revision}, the API resolved {payload.units_revision}: give the API and the workers the "
            "same registry"
        )
    if request.simulator == "openai":
        endpoint = endpoints.resolve(request.endpoint)
        if payload.llm_models is not None and payload.llm_models.simulator != endpoint.simulator_model:
            raise DeploymentMismatch(
                f"LLM endpoint '{request.endpoint}' on this worker uses simulator model "
                f"'{endpoint.simulator_model}', but the API resolved '{payload.llm_models.simulator}': give "
                "the API and the workers the same NEURONLENS_LLM_* settings"
            )
    return CheckJob(request, model, dataset, point, payload.check_id)
