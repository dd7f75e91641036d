"""Explainer backends by name (the request's `explainer` field)."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from workers.errors import UnknownBackend
from workers.explain.base import Explainer
from workers.explain.baseline import BaselineExplainer

EXPLAINERS: dict[str, Callable[[Settings], Explainer]] = {
    "baseline": lambda settings: BaselineExplainer(),
}
"""Factory per backend name; LLM backends register theirs here."""


def make_explainer(name: str, settings: Settings) -> Explainer:
    factory = EXPLAINERS.get(name)
    if factory is None:
        raise UnknownBackend(f"explainer {name!r} is not available: choose {', '.join(sorted(EXPLAINERS))}")
    return factory(settings)
