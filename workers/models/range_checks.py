"""Range checks of a job against a model of the registry (workers/process/payloads.py applies them once per
job)."""

from __future__ import annotations

from collections.abc import Sequence

from service.contract import HookPoint, ModelSpec
from workers.errors import InvalidRequest


def check_layer(model: ModelSpec, layer: int) -> None:
    if (error := model.layer_error(layer)) is not None:
        raise InvalidRequest(error)


def check_hook(model: ModelSpec, hook: str) -> HookPoint:
    try:
        return model.hook(hook)
    except KeyError:
        allowed = ", ".join(point.id for point in model.hook_points)
        raise InvalidRequest(f"hook point {hook!r} is not offered by {model.id}: choose {allowed}") from None


def check_neurons(model: ModelSpec, neurons: Sequence[int]) -> None:
    if not neurons:
        raise InvalidRequest("no neurons requested: name at least one neuron index")
    errors = [error for n in neurons if (error := model.neuron_error(n)) is not None]
    if errors:
        raise InvalidRequest(errors[0])


def check_dataset(model: ModelSpec, dataset_id: str) -> None:
    if dataset_id not in model.datasets:
        allowed = ", ".join(model.datasets)
        raise InvalidRequest(f"probe set {dataset_id!r} is not offered for {model.id}: choose {allowed}")
