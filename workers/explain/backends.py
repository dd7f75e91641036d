"""Explainer backends by name (the request's `explainer` field)."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from workers.errors import UnknownBackend
from workers.explain.base import Explainer
from workers.explain.baseline import BaselineExplainer
from workers.explain.openai_explainer import make_openai_explainer
from workers.explain.visual_baseline import VisualBaselineExplainer
from workers.simulate.openai_simulator import ImageSource


def _baseline(
    settings: Settings, endpoint: str | None, candidates: int | None, images: ImageSource | None, seed: int
) -> Explainer:
    # With a probe set's images, visual and multimodal neurons also get the visual phrase.
    return BaselineExplainer() if images is None else VisualBaselineExplainer(images)


def _openai(
    settings: Settings, endpoint: str | None, candidates: int | None, images: ImageSource | None, seed: int
) -> Explainer:
    return make_openai_explainer(settings, endpoint, images, seed, candidates)


ExplainerFactory = Callable[[Settings, str | None, int | None, ImageSource | None, int], Explainer]
"""(settings, endpoint name, candidates k, image source, seed) → explainer."""

EXPLAINERS: dict[str, ExplainerFactory] = {"baseline": _baseline, "openai": _openai}
"""Factory per backend name."""


def make_explainer(
    name: str,
    settings: Settings,
    *,
    endpoint: str | None = None,
    candidates: int | None = None,
    images: ImageSource | None = None,
    seed: int = 0,
) -> Explainer:
    """The explainer backend `name`; LLM backends use the named endpoint (None: the default one), draw
    `candidates` explanations (None: settings) and see the probe set's images when `images` is given."""
    factory = EXPLAINERS.get(name)
    if factory is None:
        raise UnknownBackend(f"explainer {name!r} is not available: choose {', '.join(sorted(EXPLAINERS))}")
    return factory(settings, endpoint, candidates, images, seed)
