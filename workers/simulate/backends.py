"""Simulator backends by name (the request's `simulator` field)."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from workers.errors import UnknownBackend
from workers.simulate.base import Simulator
from workers.simulate.baseline import BaselineSimulator
from workers.simulate.openai_simulator import ImageSource, make_openai_simulator
from workers.simulate.visual_baseline import VisualBaselineSimulator


def _baseline(settings: Settings, endpoint: str | None, images: ImageSource | None) -> Simulator:
    # With a probe set's images, image patches are predicted from their pixels and the visual phrase.
    return BaselineSimulator() if images is None else VisualBaselineSimulator(images)


def _openai(settings: Settings, endpoint: str | None, images: ImageSource | None) -> Simulator:
    return make_openai_simulator(settings, endpoint, images)


SimulatorFactory = Callable[[Settings, str | None, ImageSource | None], Simulator]
"""(settings, endpoint name, image source) → simulator."""

SIMULATORS: dict[str, SimulatorFactory] = {"baseline": _baseline, "openai": _openai}
"""Factory per backend name."""


def make_simulator(
    name: str, settings: Settings, *, endpoint: str | None = None, images: ImageSource | None = None
) -> Simulator:
    """The simulator backend `name`; LLM backends use the named endpoint (None: the default one) and the
    probe set's images when `images` is given (image patches are simulated from the image)."""
    factory = SIMULATORS.get(name)
    if factory is None:
        raise UnknownBackend(f"simulator {name!r} is not available: choose {', '.join(sorted(SIMULATORS))}")
    return factory(settings, endpoint, images)
