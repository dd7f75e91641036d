"""A pin checked against its explanation re-scored on a model (workers/analysis/rescore.py): the rule.

A pin passes when every condition it names holds:

- `type`: the neuron's type on this model (as its report would give it) equals the expected one;
- `min_score`: the score (pooled Pearson r on the held-out records) is defined and at least `min_score`;
- `max_score_drop`: the score is defined and `base_score` − score is at most `max_score_drop`.

An undefined score (constant true or simulated activations: a silent neuron, an explanation that predicts
nothing) fails every score condition; it never passes by default. Scores are compared as computed (no
rounding); the results carry them rounded to 4 decimals.
"""

from __future__ import annotations

from service.contract import Pin, PinResult
from workers.analysis.rescore import Rescored

DECIMALS = 4
"""Decimals of the scores and drops a result carries."""


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), DECIMALS) + 0.0  # + 0.0: no -0.0


def check_pin(pin: Pin, model: str, rescored: Rescored) -> PinResult:
    """The result of ``pin`` given its explanation re-scored on ``model``'s neuron."""
    score = rescored.score.correlation
    neuron_type = rescored.prepared.neuron_type.neuron_type
    drop = pin.base_score - score if score is not None and pin.base_score is not None else None
    undefined = f"the score is undefined ({rescored.score.null_reason or 'constant activations'})"
    failures: list[str] = []
    if pin.type is not None and neuron_type != pin.type:
        failures.append(f"type is {neuron_type}, expected {pin.type}")
    if pin.min_score is not None:
        if score is None:
            failures.append(f"{undefined}, expected at least {pin.min_score:.4g}")
        elif score < pin.min_score:
            failures.append(f"score {score:.4f} is below the minimum {pin.min_score:.4g}")
    if pin.max_score_drop is not None:
        if drop is None:
            failures.append(f"{undefined}, so its drop from {pin.base_score} is unknown")
        elif drop > pin.max_score_drop:
            failures.append(
                f"score {score:.4f} dropped {drop:.4f} from {pin.base_score:.4g}, more than the "
                f"maximum {pin.max_score_drop:.4g}"
            )
    return PinResult(
        name=pin.title(model),
        pin=pin,
        passed=not failures,
        score=_rounded(score),
        score_drop=_rounded(drop),
        neuron_type=neuron_type,
        failures=failures,
        llm_calls=rescored.llm_calls,
    )


def unscored_pin(pin: Pin, model: str, why: str) -> PinResult:
    """A pin that could not be scored (the budget ran out first): it fails, saying why."""
    return PinResult(name=pin.title(model), pin=pin, passed=False, failures=[f"not scored: {why}"])
