"""A comparison request checked against the registry: both models resolved as explanation requests with
the same layers, neurons, hook, probe set and method, after checking that they can be compared at all (the
same tokenizer, hook point, layer count and widths; else a 422 that says what differs)."""

from __future__ import annotations

from dataclasses import dataclass

from service.contract import ModelSpec, Registry
from service.contract.comparisons import ComparisonRequest
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


def resolve_comparison(
    registry: Registry, request: ComparisonRequest, max_neurons: int, settings: Settings | None = None
) -> ResolvedComparison:
    """Check both models and resolve both sides; InvalidInput (422) naming the field or what differs."""
    base_model = find_model(registry, request.base, "base")
    target_model = find_model(registry, request.target, "target")
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
        "dataset": resolved.dataset,
        "explainer": resolved.explainer,
        "simulator": resolved.simulator,
        "endpoint": resolved.endpoint,
        "dry_run": False,
    }
    return ResolvedComparison(request=request.model_copy(update=update), base=base, target=target)
