"""Candidate calibration: a simulator scores an explainer's k candidate explanations of a neuron on its
calibration records (explain.base.CandidateScorer), so the explainer can keep the best. Here, not in
explain/, because it joins an explainer to a simulator and the two packages stay independent."""

from __future__ import annotations

from collections.abc import Sequence

from workers.explain.base import CandidateScore
from workers.simulate.base import SimulationInput, Simulator
from workers.simulate.scoring import score_simulation
from workers.vocabulary.records import ActivationRecord


class SimulationScorer:
    """CandidateScorer that simulates every candidate on the calibration records and scores it by the
    pooled correlation with the real activations (workers.simulate.scoring)."""

    def __init__(self, simulator: Simulator, seed: int = 0) -> None:
        self.simulator = simulator
        self.seed = seed
        """Seed of the score's bootstrap interval."""

    def score(self, texts: Sequence[str], records: Sequence[ActivationRecord]) -> list[CandidateScore]:
        tokens = [record.record for record in records]
        results = self.simulator.simulate([SimulationInput(text, list(tokens)) for text in texts])
        real = [record.activations for record in records]
        scores = []
        for result in results:
            score = score_simulation(real, result.predictions, [True] * len(real), seed=self.seed)
            scores.append(
                CandidateScore(
                    correlation=score.correlation,
                    null_reason=score.null_reason,
                    parse_failures=result.parse_failures,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    llm_calls=result.llm_calls,
                )
            )
        return scores
