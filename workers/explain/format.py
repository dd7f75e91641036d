"""Activation records as explainer prompt text (Bills et al. 2023): each record is its tokens as
`token<TAB>activation` lines, activation an integer 0–10 on the normalised scale, between `<start>` and
`<end>`. Shared by every explainer that writes prompts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.records import ActivationRecord

EXPLANATION_PREFIX = "the main thing this neuron does is find"


def discretise(normalised: np.ndarray) -> list[int]:
    """0–10 floats → integers 0–10 (rounded half to even, as numpy rounds)."""
    return [int(value) for value in np.clip(np.rint(normalised), 0, 10)]


def format_record(record: ActivationRecord, max_activation: float) -> str:
    """One record as `<start>\\ntoken\\tact\\n…<end>`."""
    values = discretise(record.normalised(max_activation))
    lines = [f"{token}\t{value}" for token, value in zip(record.tokens, values, strict=True)]
    return "<start>\n" + "\n".join(lines) + "\n<end>"


def format_records(records: Sequence[ActivationRecord], max_activation: float) -> str:
    """Several records, separated by blank lines."""
    return "\n\n".join(format_record(record, max_activation) for record in records)
