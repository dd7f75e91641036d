"""A comparison request checked against the registry: both models resolved as explanation requests with
the same layers, neurons, hook, probe set and method, after checking that they can be compared at all (the
same tokenizer, hook point, layer count and widths; else a 422 that says what differs). With `units`, both
are seen through the same dictionary id (docs/dictionaries.md), whose latent counts must agree."""

from __future__ import annotations

from dataclasses import dataclass

from service.contract import ModelSpec, Registry
from service.contract.comparisons import ComparisonRequest
from service.estimates.units import resolve_units
from service.estimates.validate import ResolvedRequest, find_model, resolve_hook, resolve_request
from service.problems import FieldProblem, InvalidInput
from service.settings import Settings


@dataclass(frozen=True)
class ResolvedComparison:
    """A comparison with both sides resolved: the same layers, neurons, hook, probe set and backends."""

    request: ComparisonRequest
    """The request with layers, neurons, hook, dataset and backends as the base resolved them."""
    base: ResolvedRequest
    target: ResolvedRequest

    @property
    def layers(self) -> list[int]:
        return self.base.layers


def differences(base: ModelSpec, target: ModelSpec, hook: str) -> list[str]:
    """What keeps `base` and `target` from being compared at `hook`, in words (empty: nothing)."""
    found = []
    if base.tokenizer_id != target.tokenizer_id:
        found.append(
            f"tokenizer: {base.id} uses {base.tokenizer_id!r}, {target.id} uses {target.tokenizer_id!r}"
        )
    if base.modality != target.modality:
        found.append(f"modality: {base.id} is {base.modality}, {target.id} is {target.modality}")
    if base.layers != target.layers:
        found.append(f"layers: {base.id} has {base.layers}, {target.id} has {target.layers}")
    if base.neurons_per_layer != target.neurons_per_layer:
        found.append(
            f"width of hook {hook!r}: {base.id} has {base.neurons_per_layer} neurons per layer, "
            f"{target.id} has {target.neurons_per_layer}"
        )
    if hook not in {point.id for point in target.hook_points}:
        found.append(f"hook point: {target.id} has no hook {hook!r}")
    return found


def _through_units(
    base: ModelSpec, target: ModelSpec, request: ComparisonRequest
) -> tuple[ModelSpec, ModelSpec]:
    """Both models as the request's `units` sees them: the same dictionary id attached to both, at the same
    hook point, with the same latent count (each may have its own files and revision); InvalidInput naming
    `units` otherwise."""
    units, hook = request.units, request.hook
    base_seen = resolve_units(base, units, hook)
    target_seen = resolve_units(target, units, hook)
    if base_seen.units is None or target_seen.units is None:
        return base_seen, target_seen
    found = []
    if base_seen.units.hook != target_seen.units.hook:
        found.append(
            f"hook point: {units} reads {base_seen.units.hook!r} of {base.id} but "
            f"{target_seen.units.hook!r} of {target.id}"
        )
    if base_seen.units.kind != target_seen.units.kind:
        found.append(
            f"kind: {units} is a {base_seen.units.kind} on {base.id}, "
            f"a {target_seen.units.kind} on {target.id}"
        )
    if base_seen.neurons_per_layer != target_seen.neurons_per_layer:
        found.append(
            f"latents: {units} has {base_seen.neurons_per_layer} per layer on {base.id}, "
            f"{target_seen.neurons_per_layer} on {target.id}"
        )
    if found:
        message = f"dictionary {units} of {base.id} and of {target.id} cannot be compared: " + "; ".join(
            found
        )
        raise InvalidInput.for_field("units", message)
    return base_seen, target_seen


def resolve_comparison(
    registry: Registry, request: ComparisonRequest, max_neurons: int, settings: Settings | None = None
) -> ResolvedComparison:
    """Check both models and resolve both sides; InvalidInput (422) naming the field or what differs."""
    base_model = find_model(registry, request.base, "base")
    target_model = find_model(registry, request.target, "target")
    base_model, target_model = _through_units(base_model, target_model, request)
    hook = resolve_hook(base_model, request.hook)
    found = differences(base_model, target_model, hook)
    if found:
        message = f"{request.base} and {request.target} cannot be compared: " + "; ".join(found)
        raise InvalidInput(message, [FieldProblem(field="target", message=item) for item in found])
    base = resolve_request(registry, request.side(request.base), max_neurons, settings)
    target_request = base.request.model_copy(update={"model": request.target})
    target = resolve_request(registry, target_request, max_neurons, settings)
    resolved = base.request
    update = {
        "layers": base.layers,
        "neurons": base.neurons,
        "hook": resolved.hook,
        "units": resolved.units,
        "dataset": resolved.dataset,
        "explainer": resolved.explainer,
        "simulator": resolved.simulator,
        "endpoint": resolved.endpoint,
        "dry_run": False,
    }
    return ResolvedComparison(request=request.model_copy(update=update), base=base, target=target)
