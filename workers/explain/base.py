"""The explainer contract. An explainer turns each neuron's explainer records into one sentence that
completes "the main thing this neuron does is find …" (Bills et al. 2023).

It works on a batch of neurons (list in, list out, same order) so that backends calling an LLM can run
their calls concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from service.contract import ExplanationCandidate
from workers.vocabulary.records import ActivationRecord, NeuronRecords


@dataclass(frozen=True, slots=True)
class ExplainerResult:
    """One neuron's explanation."""

    text: str
    """One sentence completing "the main thing this neuron does is find …" (without that prefix)."""
    candidates: list[ExplanationCandidate] | None = None
    """All candidates with their calibration scores when the backend drew k > 1, else None."""
    prompt_tokens: int = 0
    """LLM prompt tokens spent on this neuron (0 for the baseline)."""
    completion_tokens: int = 0
    """LLM completion tokens spent on this neuron (0 for the baseline)."""
    llm_calls: int = 0
    """LLM requests made for this neuron, retries and candidate calibration included (0 for the baseline)."""
    prompt_version: str | None = None
    """Prompt version used for this neuron when it differs from the explainer's `prompt_version`
    (a vision-language explainer writes text neurons with the text prompt)."""


class Explainer(Protocol):
    """Explains neurons from their top records; `backend`, `model`, `prompt_version` go into reports."""

    @property
    def backend(self) -> str:
        """Backend name as requested: `baseline`, `openai`."""
        ...

    @property
    def model(self) -> str:
        """Model that wrote the explanation (`baseline-v1` for the baseline)."""
        ...

    @property
    def prompt_version(self) -> str:
        """Version of the prompt or rule set."""
        ...

    def explain(self, neurons: Sequence[NeuronRecords]) -> list[ExplainerResult]:
        """One result per neuron, in order. Raise a named error (never return error text)."""
        ...


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """How well one candidate explanation predicted the calibration records."""

    correlation: float | None
    """Pearson correlation of the simulated and real activations, pooled over the records; None when
    undefined (see `null_reason`)."""
    null_reason: str | None
    """Why the correlation is None (all-zero activations or predictions, nothing parsed), else None."""
    parse_failures: int
    """Simulator replies that could not be parsed."""
    prompt_tokens: int = 0
    """LLM prompt tokens the scoring spent."""
    completion_tokens: int = 0
    """LLM completion tokens the scoring spent."""
    llm_calls: int = 0
    """LLM requests the scoring made, retries included."""


class CandidateScorer(Protocol):
    """Scores candidate explanations of one neuron on records kept out of the explainer's prompt (the
    calibration split), so an explainer drawing k > 1 can keep the best. The explainer does not know how:
    workers/analysis/calibration.py simulates them."""

    def score(self, texts: Sequence[str], records: Sequence[ActivationRecord]) -> list[CandidateScore]:
        """One score per text, in order."""
        ...
