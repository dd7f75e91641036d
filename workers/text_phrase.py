"""The text phrase of a baseline explanation: the contract between the baseline explainer, which writes
it, and the baseline simulators, which read it back (DESIGN §4.5–§4.6; the visual phrase is
workers/visual_features.py).

It reads ``the tokens "red", "blue" and "green" (mostly in colours samples), often after "the"``: the
quoted tokens (``\\`` and ``"`` escaped) are what the neuron responds to, the word after CONTEXT_LEAD the one
that usually precedes them; the domain in brackets is informative only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXT_LEAD = ", often after "
"""Introduces the quoted word that usually precedes the listed tokens."""

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def quote(token: str) -> str:
    """A token in double quotes, with `\\` and `"` escaped (`parse_text_phrase` unescapes them)."""
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class TextPhrase:
    """The quoted parts of a baseline explanation's text phrase."""

    tokens: list[str]
    """Quoted tokens in order, lower-cased."""
    context: list[str]
    """Quoted preceding words, lower-cased (may be empty)."""


def _quoted(text: str) -> list[str]:
    return [_ESCAPE.sub(r"\1", match).lower() for match in _QUOTED.findall(text)]


def parse_text_phrase(text: str) -> TextPhrase | None:
    """The quoted tokens (and context words) of an explanation; None when it quotes no token."""
    head, separator, tail = text.partition(CONTEXT_LEAD)
    tokens = _quoted(head)
    if not tokens:
        return None
    return TextPhrase(tokens=tokens, context=_quoted(tail) if separator else [])
