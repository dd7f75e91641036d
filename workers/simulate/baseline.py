"""The offline baseline simulator (`baseline` / `baseline-v1`): predicts from the explanation's token
classes and quoted tokens only. A word of a class the explanation names (workers/vocabulary/token_classes.py:
numbers, punctuation marks, capitalised names, a word family by its stem; sub-word pieces per token)
gets 10. A word matching the i-th of K quoted tokens gets 10·(1 − i/(2K)) (earlier = stronger); when
the explanation names a preceding word ("often after X") and the word is not preceded by it, the value is
scaled by CONTEXT_MISS. Every other token gets 0. An explanation naming neither a class nor a quoted token
is a parse failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.simulate.base import SimulationInput, SimulatorResult
from workers.vocabulary.records import MODALITY_TEXT, TokenRecord, word_spans
from workers.vocabulary.text_phrase import TextPhrase, parse_text_phrase
from workers.vocabulary.token_classes import digit_text, is_piece, word_class_set

CONTEXT_MISS = 0.75
"""Scale for a listed word that is not preceded by the explanation's context word."""


def predict_record(parsed: TextPhrase, record: TokenRecord) -> np.ndarray:
    """0–10 per token of `record` (all pieces of a matching word get the word's value)."""
    count = len(parsed.tokens)
    weights: dict[str, float] = {}
    for index, token in enumerate(parsed.tokens):
        weights.setdefault(token, 10.0 * (1.0 - index / (2.0 * count)))
    values = np.zeros(len(record.tokens), dtype=np.float32)
    text = (record.modality == MODALITY_TEXT).tolist()
    if "pieces" in parsed.classes:
        bpe = any(token.startswith(("Ġ", "▁")) for token in record.tokens)
        for index, token in enumerate(record.tokens):
            if text[index] and is_piece(token, record.tokens[index - 1] if index else None, bpe):
                values[index] = 10.0
    if "numbers" in parsed.classes:  # digit tokens, also where they continue another word
        for index, token in enumerate(record.tokens):
            if text[index] and digit_text(token) is not None:
                values[index] = 10.0
    previous: str | None = None
    shown_previous: str | None = None
    for word, start, end in word_spans(record.tokens):
        key = word.lower()
        in_class = bool(parsed.classes & word_class_set(word, shown_previous)) or any(
            key.startswith(stem) for stem in parsed.stems
        )
        shown_previous = word
        if in_class and all(text[start:end]):
            values[start:end] = 10.0
            previous = key
            continue
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
            parsed = parse_text_phrase(item.explanation)
            if parsed is None:
                results.append(SimulatorResult(predictions=[None] * len(item.records), parse_failures=1))
                continue
            predictions: list[np.ndarray | None] = [predict_record(parsed, rec) for rec in item.records]
            results.append(SimulatorResult(predictions=predictions, parse_failures=0))
        return results
