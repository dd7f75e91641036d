"""Explainer and simulator backends by name (a request's `explainer` and `simulator` fields).

The one place that knows both explain/ and simulate/: an `openai` explainer drawing k > 1 candidates
scores them with the `openai` simulator on its own endpoint (workers/analysis/calibration.py).
"""

from __future__ import annotations

from collections.abc import Callable

from workers.analysis.calibration import SimulationScorer
from workers.data.images import ImageSource
from workers.errors import UnknownBackend
from workers.explain.base import Explainer
from workers.explain.baseline import BaselineExplainer
from workers.explain.openai_explainer import OpenAIExplainer
from workers.explain.visual_baseline import VisualBaselineExplainer
from workers.llm.caller import LLMCallers
from workers.simulate.base import Simulator
from workers.simulate.baseline import BaselineSimulator
from workers.simulate.batched import BatchedOpenAISimulator
from workers.simulate.binary import BaselineJudge, Judge, OpenAIJudge
from workers.simulate.openai_simulator import OpenAISimulator, make_openai_simulator
from workers.simulate.visual_baseline import VisualBaselineSimulator


def make_openai_explainer(
    llm: LLMCallers,
    endpoint: str | None = None,
    images: ImageSource | None = None,
    seed: int = 0,
    candidates: int | None = None,
) -> OpenAIExplainer:
    """The `openai` explainer on the named endpoint (None: the default) drawing `candidates` explanations
    (None: the deployment's default k); with k > 1 the `openai` simulator on the same endpoint scores them."""
    caller = llm.caller(endpoint)
    k = candidates if candidates is not None else llm.endpoints.candidates
    scorer = SimulationScorer(OpenAISimulator(caller, images=images), seed) if k > 1 else None
    return OpenAIExplainer(caller, candidates=k, scorer=scorer, images=images)


def _baseline_explainer(
    llm: LLMCallers, endpoint: str | None, candidates: int | None, images: ImageSource | None, seed: int
) -> Explainer:
    # With a probe set's images, visual and multimodal neurons also get the visual phrase.
    return BaselineExplainer() if images is None else VisualBaselineExplainer(images)


def _openai_explainer(
    llm: LLMCallers, endpoint: str | None, candidates: int | None, images: ImageSource | None, seed: int
) -> Explainer:
    return make_openai_explainer(llm, endpoint, images, seed, candidates)


ExplainerFactory = Callable[[LLMCallers, str | None, int | None, ImageSource | None, int], Explainer]
"""(LLM callers, endpoint name, candidates k, image source, seed) → explainer."""

EXPLAINERS: dict[str, ExplainerFactory] = {"baseline": _baseline_explainer, "openai": _openai_explainer}
"""Factory per explainer backend name."""


def make_explainer(
    name: str,
    llm: LLMCallers,
    *,
    endpoint: str | None = None,
    candidates: int | None = None,
    images: ImageSource | None = None,
    seed: int = 0,
) -> Explainer:
    """The explainer backend `name`; LLM backends use the named endpoint (None: the default one), draw
    `candidates` explanations (None: the deployment's default) and see the probe set's images when
    `images` is given."""
    factory = EXPLAINERS.get(name)
    if factory is None:
        raise UnknownBackend(f"explainer {name!r} is not available: choose {', '.join(sorted(EXPLAINERS))}")
    return factory(llm, endpoint, candidates, images, seed)


def _baseline_simulator(llm: LLMCallers, endpoint: str | None, images: ImageSource | None) -> Simulator:
    # With a probe set's images, image patches are predicted from their pixels and the visual phrase.
    return BaselineSimulator() if images is None else VisualBaselineSimulator(images)


def _openai_simulator(llm: LLMCallers, endpoint: str | None, images: ImageSource | None) -> Simulator:
    return make_openai_simulator(llm, endpoint, images)


SimulatorFactory = Callable[[LLMCallers, str | None, ImageSource | None], Simulator]
"""(LLM callers, endpoint name, image source) → simulator."""

SIMULATORS: dict[str, SimulatorFactory] = {"baseline": _baseline_simulator, "openai": _openai_simulator}
"""Factory per simulator backend name."""


def make_simulator(
    name: str,
    llm: LLMCallers,
    *,
    endpoint: str | None = None,
    images: ImageSource | None = None,
    batch_records: int | None = None,
) -> Simulator:
    """The simulator backend `name`; LLM backends use the named endpoint (None: the default one) and the
    probe set's images when `images` is given (image patches are simulated from the image). With
    `batch_records`, the `openai` backend asks for that many records' text tokens per request (the
    baseline predicts the same either way)."""
    factory = SIMULATORS.get(name)
    if factory is None:
        raise UnknownBackend(f"simulator {name!r} is not available: choose {', '.join(sorted(SIMULATORS))}")
    if batch_records is not None and name == "openai":
        return BatchedOpenAISimulator(llm.caller(endpoint), images=images, batch_records=batch_records)
    return factory(llm, endpoint, images)


def make_judge(name: str, llm: LLMCallers, *, endpoint: str | None = None, batch: int = 10) -> Judge:
    """The detection/fuzzing judge of simulator backend `name` (`batch` texts per `openai` request)."""
    if name == "openai":
        return OpenAIJudge(llm.caller(endpoint), batch)
    if name == "baseline":
        return BaselineJudge()
    raise UnknownBackend(f"simulator {name!r} is not available: choose {', '.join(sorted(SIMULATORS))}")
