"""The offline baseline simulator (`baseline` / `baseline-v1`): predicts from the explanation's quoted
tokens only. A word matching the i-th of K quoted tokens gets 10·(1 − i/(2K)) (earlier = stronger); when
the explanation names a preceding word ("often after X") and the word is not preceded by it, the value is
scaled by CONTEXT_MISS. Every other token gets 0. An explanation without quoted tokens is a parse failure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.records import MODALITY_TEXT, TokenRecord, word_spans
from workers.simulate.base import SimulationInput, SimulatorResult

CONTEXT_MISS = 0.75
"""Scale for a listed word that is not preceded by the explanation's context word."""
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_CONTEXT = ", often after "


@dataclass(frozen=True, slots=True)
class ParsedExplanation:
    tokens: list[str]
    """Quoted tokens in order, lower-cased."""
    context: list[str]
    """Quoted preceding words, lower-cased (may be empty)."""


def _quoted(text: str) -> list[str]:
    return [_ESCAPE.sub(r"\1", match).lower() for match in _QUOTED.findall(text)]


def parse_explanation(text: str) -> ParsedExplanation | None:
    """The quoted tokens (and context words) of an explanation; None when it quotes no token."""
    head, separator, tail = text.partition(_CONTEXT)
    tokens = _quoted(head)
    if not tokens:
        return None
    return ParsedExplanation(tokens=tokens, context=_quoted(tail) if separator else [])


def predict_record(parsed: ParsedExplanation, record: TokenRecord) -> np.ndarray:
    """0–10 per token of `record` (all pieces of a matching word get the word's value)."""
    count = len(parsed.tokens)
    weights: dict[str, float] = {}
    for index, token in enumerate(parsed.tokens):
        weights.setdefault(token, 10.0 * (1.0 - index / (2.0 * count)))
    values = np.zeros(len(record.tokens), dtype=np.float32)
    text = (record.modality == MODALITY_TEXT).tolist()
    previous: str | None = None
    for word, start, end in word_spans(record.tokens):
        key = word.lower()
        weight = weights.get(key)
        if weight is not None and all(text[start:end]):
            if parsed.context and previous not in parsed.context:
                weight *= CONTEXT_MISS
            values[start:end] = weight
        previous = key
    return values


class BaselineSimulator:
    """Simulator backend `baseline`: offline and deterministic, from the explanation text alone."""

    backend = "baseline"
    model = "baseline-v1"

    def simulate(self, items: Sequence[SimulationInput]) -> list[SimulatorResult]:
        results = []
        for item in items:
            parsed = parse_explanation(item.explanation)
            if parsed is None:
                results.append(SimulatorResult(predictions=[None] * len(item.records), parse_failures=1))
                continue
            predictions: list[np.ndarray | None] = [predict_record(parsed, rec) for rec in item.records]
            results.append(SimulatorResult(predictions=predictions, parse_failures=0))
        return results
