"""The viewer's mark on a report made with non-default options: such a report is not the default one of
its neuron (another variant, perhaps another scan), and nothing else on its page would tell."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BADGE_ID = "non-default-options"
"""Id (and class) of the mark; tests and scripts find it by this."""


def options_badge(labels: Sequence[str]) -> str:
    """A line with a "non-default options" badge and the options (``seed=1, text_threshold=2.5``); the empty
    string for a report made with the defaults."""
    if not labels:
        return ""
    shown = ", ".join(escape(label) for label in labels)
    return (
        f'<p id="{BADGE_ID}" class="{BADGE_ID}"><span class="badge" style="background: #ffd9d9" '
        f'title="made with options that are not the defaults">non-default options</span> {shown}</p>'
    )
