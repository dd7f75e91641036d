"""The simulator contract. A simulator predicts a 0–10 activation per token of each held-out record from
the explanation alone: it receives the records' tokens (TokenRecord), never their activations.

It works on a batch of neurons (list in, list out, same order) so LLM backends can run calls concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from workers.vocabulary.records import TokenRecord


@dataclass(frozen=True, slots=True)
class SimulationInput:
    """One neuron to simulate: its explanation and the held-out records' tokens."""

    explanation: str
    records: list[TokenRecord]


@dataclass(frozen=True, slots=True)
class SimulatorResult:
    """Predictions for one neuron's records, in the order given."""

    predictions: list[np.ndarray | None]
    """0–10 per token for each record; None for a record whose prediction could not be parsed (it is
    left out of scoring, never scored as zeros)."""
    parse_failures: int
    """Replies or explanations that could not be parsed."""
    prompt_tokens: int = 0
    """LLM prompt tokens spent on this item (0 for the baseline)."""
    completion_tokens: int = 0
    """LLM completion tokens spent on this item (0 for the baseline)."""
    llm_calls: int = 0
    """LLM requests made for this item, retries included (0 for the baseline)."""
    prompt_version: str | None = None
    """Version of the simulator prompt(s) used (`text-simulator-1`, `visual-simulator-1`, both joined by
    `+` when a record had text and image patches); None for the baseline."""


class Simulator(Protocol):
    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    def simulate(self, items: Sequence[SimulationInput]) -> list[SimulatorResult]:
        """One result per item, in order. Raise a named error (never return error text)."""
        ...
