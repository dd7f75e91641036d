"""A check request (`POST /v1/checks`) checked against the registry and priced before anything is enqueued.

Every pin's layer and neuron is checked against the model, seen through the check's `units` when they name a
dictionary (422 naming `units`, `pins.<i>.layer` or `pins.<i>.neuron`);
the rest (model, hook, probe set, simulator, endpoint, budget) is checked as an explanation request with the
same fields is (service/estimates/validate.py), the explainer left at the offline baseline: a check only
simulates.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.contract import (
    MAX_PINS,
    Backend,
    CallEstimate,
    CheckEstimate,
    CheckRequest,
    DatasetSpec,
    ExplanationRequest,
    LLMModels,
    ModelSpec,
    Registry,
    scan_id,
    scan_manifest_key,
)
from service.contract.objects import ObjectStore
from service.estimates.estimate import estimate_calls
from service.estimates.units import resolve_units
from service.estimates.validate import (
    ResolvedRequest,
    check_layer,
    check_neuron,
    find_model,
    resolve_request,
)
from service.settings import Settings


@dataclass(frozen=True)
class ResolvedCheck:
    """A check with every default filled in and checked against the registry."""

    request: CheckRequest
    """The request with `hook`, `dataset` and `simulator` set, `endpoint` set for the `openai` simulator."""
    scan: ResolvedRequest
    """The equivalent explanation request of the pinned layers (baseline explainer): what the scan of the
    layers is enqueued from and what the dry run prices."""

    @property
    def model(self) -> ModelSpec:
        return self.scan.model

    @property
    def dataset(self) -> DatasetSpec:
        return self.scan.dataset

    @property
    def llm_models(self) -> LLMModels | None:
        return self.scan.llm_models


def _scan_request(request: CheckRequest) -> ExplanationRequest:
    layers = request.layer_list()
    return ExplanationRequest(
        model=request.model,
        layer=layers[0] if len(layers) == 1 else None,
        layers=layers if len(layers) > 1 else None,
        neurons=sorted({pin.neuron for pin in request.pins}),
        hook=request.hook,
        units=request.units,
        dataset=request.dataset,
        explainer=Backend.BASELINE,
        simulator=request.simulator,
        endpoint=request.endpoint,
        # A check re-scores pinned explanations and computes no chance level: no null simulations to count.
        options=request.options.model_copy(update={"chance_explanations": 0}),
        budget=request.budget,
    )


def resolve_check(registry: Registry, request: CheckRequest, settings: Settings | None) -> ResolvedCheck:
    """Fill the defaults of a check and check every part of it; InvalidInput naming the field otherwise."""
    model = resolve_units(find_model(registry, request.model), request.units, request.hook)
    for position, pin in enumerate(request.pins):
        check_layer(model, pin.layer, f"pins.{position}.layer")
        check_neuron(model, pin.neuron, f"pins.{position}.neuron")
    scan = resolve_request(registry, _scan_request(request), MAX_PINS, settings)
    resolved = scan.request
    update = {
        "hook": resolved.hook,
        "units": resolved.units,
        "dataset": resolved.dataset,
        "simulator": resolved.simulator,
        "endpoint": resolved.endpoint if resolved.simulator == Backend.OPENAI else None,
    }
    return ResolvedCheck(request=request.model_copy(update=update), scan=scan)


def check_calls(resolved: ResolvedCheck) -> CallEstimate:
    """The LLM calls of a check, as quotas count them: per pin the simulator's calls on one neuron's
    held-out records (top and random), as an explanation with the baseline explainer counts them."""
    first = resolved.request.pins[0]
    per_pin = estimate_calls(resolved.scan.for_layer(first.layer, [first.neuron])).llm_calls_per_neuron
    pins = len(resolved.request.pins)
    return CallEstimate(neurons=pins, llm_calls_per_neuron=per_pin, llm_calls=pins * per_pin, scan_passes=1)


def estimate_check(resolved: ResolvedCheck, store: ObjectStore) -> CheckEstimate:
    """What a check would cost (its LLM calls, the layers whose scan is not stored); enqueues nothing."""
    request = resolved.request
    layers = request.layer_list()
    stored = _stored_scans(resolved, store)
    return CheckEstimate(
        model=request.model,
        pins=len(request.pins),
        layers=layers,
        layers_to_scan=[layer for layer in layers if layer not in stored],
        llm_calls=check_calls(resolved).llm_calls,
        simulator=str(request.simulator),
        endpoint=request.endpoint,
    )


def _stored_scans(resolved: ResolvedCheck, store: ObjectStore) -> set[int]:
    """The pinned layers whose scan artifact is stored."""
    request, model, options = resolved.request, resolved.model, resolved.request.options
    assert request.hook is not None
    return {
        layer
        for layer in request.layer_list()
        if store.exists(
            scan_manifest_key(
                scan_id(model, resolved.dataset, request.hook, layer, options.n_top, options.seed)
            )
        )
    }
