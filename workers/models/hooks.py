"""Reading activations at registry hook points. Hooks are global state on the module tree, so they exist
only inside `capture_activations` and are removed in `finally`; captured tensors are detached."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from service.contract import HookPoint
from workers.errors import InvalidRequest


class StopForward(Exception):
    """Raised by the hook of the last layer needed, to skip the rest of the forward pass."""


def resolve_module(root: torch.nn.Module, point: HookPoint, layer: int) -> torch.nn.Module:
    """The module a hook point names for `layer`."""
    path = point.module.format(layer=layer)
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise InvalidRequest(
            f"hook point {point.id!r}: module {path!r} does not exist in {type(root).__name__}"
        ) from None


def _output_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple | list) else value


Sink = Callable[[int, torch.Tensor], None]
"""Called with (layer, activations [batch, seq, neurons]) inside the hook, while the tensor is fresh."""


@contextmanager
def capture_activations(
    root: torch.nn.Module,
    point: HookPoint,
    layers: Sequence[int],
    stop_after_last: bool = False,
    sink: Sink | None = None,
) -> Iterator[dict[int, torch.Tensor]]:
    """Yield a dict that every forward pass fills with layer → activation tensor [batch, seq, neurons].

    With `sink`, each tensor is handed to it from inside the hook instead (and the dict stays empty), so
    it is consumed while still in cache and freed as the forward pass goes on. With `stop_after_last`,
    the hook of the last layer (in forward order: the highest index) raises StopForward once its tensor
    is stored or sunk; run the forward through `run_forward` to swallow it. Values are identical to a
    full forward pass: nothing before the hook changes.
    """
    captured: dict[int, torch.Tensor] = {}
    store = sink if sink is not None else captured.__setitem__
    handles: list[torch.utils.hooks.RemovableHandle] = []
    last = max(layers)
    try:
        for layer in layers:
            module = resolve_module(root, point, layer)
            stop = stop_after_last and layer == last
            if point.capture == "output":
                handles.append(module.register_forward_hook(_output_hook(store, layer, stop)))
            else:
                handles.append(module.register_forward_pre_hook(_input_hook(store, layer, stop)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _output_hook(store: Sink, layer: int, stop: bool) -> Callable[..., None]:
    def hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
        store(layer, _output_tensor(output).detach())
        if stop:
            raise StopForward

    return hook


def _input_hook(store: Sink, layer: int, stop: bool) -> Callable[..., None]:
    def hook(_module: torch.nn.Module, args: Any) -> None:
        store(layer, _output_tensor(args).detach())
        if stop:
            raise StopForward

    return hook


def run_forward(forward: Callable[[], object]) -> None:
    """Run a forward pass that may be cut short by StopForward."""
    try:
        forward()
    except StopForward:
        pass
