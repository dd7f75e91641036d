"""The text phrase of a baseline explanation: the contract between the baseline explainer, which writes
it, and the baseline simulators, which read it back (docs/method.md#explanation; the visual phrase is
workers/vocabulary/visual_features.py).

It reads ``the tokens "red", "blue" and "green" (mostly in colours samples), often after "the"``: the
quoted tokens (``\\`` and ``"`` escaped) are what the neuron responds to, the word after CONTEXT_LEAD the one
that usually precedes them; the domain in brackets is informative only. Before the quoted tokens it may
name a token class (workers/vocabulary/token_classes.py), e.g. ``numbers (digit tokens), e.g. "12", "7"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.vocabulary.token_classes import named_classes

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
    classes: frozenset[str] = frozenset()
    """Token classes the explanation names (workers/vocabulary/token_classes.py)."""
    stems: tuple[str, ...] = ()
    """Word-family stems the explanation names, lower-cased."""


def _quoted(text: str) -> list[str]:
    return [_ESCAPE.sub(r"\1", match).lower() for match in _QUOTED.findall(text)]


def parse_text_phrase(text: str) -> TextPhrase | None:
    """The quoted tokens (and context words) and the token classes an explanation names; None when it
    names neither a token nor a class."""
    head, separator, tail = text.partition(CONTEXT_LEAD)
    tokens = _quoted(head)
    classes, stems = named_classes(head)
    if not tokens and not classes and not stems:
        return None
    return TextPhrase(
        tokens=tokens,
        context=_quoted(tail) if separator else [],
        classes=frozenset(classes),
        stems=tuple(stems),
    )
