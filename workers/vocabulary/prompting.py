"""Prompt pieces both the explainer and the simulator prompts are made of (a contract, pinned by the
exact-text tests in tests/workers/test_prompts.py): the sentence an explanation completes, the
``token<TAB>activation`` record lines between ``<start>`` and ``<end>`` (Bills et al. 2023), and images as
data URLs. workers/explain/prompts.py and workers/simulate/prompts.py build their messages from these.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

COMPLETION_PHRASE = "the main thing this neuron does is find"
"""The sentence the explainer completes; explanations are stored without it."""


def escape_token(token: str) -> str:
    """Keep one token on one line: tabs and newlines inside a token would break the line format."""
    return token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def activation_integer(value: float) -> int:
    """A normalised activation as the 0–10 integer the prompt shows (half rounds up)."""
    if not math.isfinite(value):
        return 0
    return int(math.floor(min(10.0, max(0.0, value)) + 0.5))


def format_record(tokens: Sequence[str], activations: Sequence[float] | None) -> str:
    """``<start>``, a ``token<TAB>value`` line per token (``unknown`` if `activations` is None), ``<end>``.

    `activations` are normalised (0–10) and shown as integers by `activation_integer`."""
    if activations is not None and len(activations) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(activations)} activations: they must match")
    if activations is None:
        lines = [f"{escape_token(token)}\tunknown" for token in tokens]
    else:
        lines = [
            f"{escape_token(token)}\t{activation_integer(value)}"
            for token, value in zip(tokens, activations, strict=True)
        ]
    return "\n".join(["<start>", *lines, "<end>"])


def png_data_url(png: bytes) -> str:
    """An image as the base64 data URL that `image_url` content parts take."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
