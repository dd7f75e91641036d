"""Simulator backends by name (the request's `simulator` field)."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from workers.errors import UnknownBackend
from workers.simulate.base import Simulator
from workers.simulate.baseline import BaselineSimulator

SIMULATORS: dict[str, Callable[[Settings], Simulator]] = {
    "baseline": lambda settings: BaselineSimulator(),
}
"""Factory per backend name; LLM backends register theirs here."""


def make_simulator(name: str, settings: Settings) -> Simulator:
    factory = SIMULATORS.get(name)
    if factory is None:
        raise UnknownBackend(f"simulator {name!r} is not available: choose {', '.join(sorted(SIMULATORS))}")
    return factory(settings)
