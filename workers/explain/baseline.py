"""The offline, deterministic baseline explainer (`baseline` / `baseline-v1`).

From the explainer records' normalised activations it finds the words (sub-word pieces merged) that carry
most of the squared activation mass, the word that most often precedes them, and the domain most of the
mass comes from, and writes e.g. `the tokens "red", "blue" and "green" (mostly in colours samples),
often after "the"`. Quoted tokens are the contract with the simulators (workers/text_phrase.py): they
predict from them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from workers.explain.base import ExplainerResult
from workers.records import MODALITY_TEXT, NeuronRecords, word_layout
from workers.text_phrase import CONTEXT_LEAD, quote

MAX_WORDS = 5
"""Most quoted words in one explanation."""
MIN_SHARE_OF_BEST = 0.15
"""A word is listed only while its mass is at least this share of the best word's."""
COVERED_SHARE = 0.8
"""Stop listing words once they carry this share of the total mass."""
CONTEXT_SHARE = 0.4
"""Name a preceding word when it precedes this share of the listed words' mass."""
DOMAIN_SHARE = 0.6
"""Name a domain when this share of the mass comes from its samples."""
NOTHING = "nothing in particular: it is never above zero on the probe samples shown"


def _word_list(words: Sequence[str]) -> str:
    quoted = [quote(word) for word in words]
    if len(quoted) == 1:
        return f"the token {quoted[0]}"
    return "the tokens " + ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _ranked(masses: Mapping[str, float]) -> list[tuple[str, float]]:
    """Largest mass first; equal masses keep first-seen order (sorting is stable)."""
    return sorted(masses.items(), key=lambda item: -item[1])


class _Mass:
    """Squared normalised activation per word, per preceding word and per domain."""

    def __init__(self, neuron: NeuronRecords) -> None:
        self.words: defaultdict[str, float] = defaultdict(float)
        self.shown: dict[str, str] = {}
        self.before: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.domains: defaultdict[str, float] = defaultdict(float)
        for record in neuron.records:
            if not record.tokens:
                continue
            words, keys, starts = word_layout(record.tokens)
            norm = record.normalised(neuron.max_activation)
            if not (record.record.modality == MODALITY_TEXT).all():
                norm = np.where(record.record.modality == MODALITY_TEXT, norm, -1.0)  # a word must be text
            peaks = np.maximum.reduceat(norm, starts)
            domain = record.record.domain
            # Only words where the neuron is active are visited in Python.
            for index in np.flatnonzero(peaks > 0).tolist():
                key, weight = keys[index], float(peaks[index]) ** 2
                self.words[key] += weight
                self.shown.setdefault(key, words[index])
                if index > 0:
                    self.before[key][keys[index - 1]] += weight
                if domain is not None:
                    self.domains[domain] += weight

    def listed(self) -> list[str]:
        total = sum(self.words.values())
        ranked = _ranked(self.words)
        best = ranked[0][1]
        chosen: list[str] = []
        covered = 0.0
        for key, mass in ranked:
            if (
                len(chosen) == MAX_WORDS
                or mass < MIN_SHARE_OF_BEST * best
                or covered >= COVERED_SHARE * total
            ):
                break
            chosen.append(key)
            covered += mass
        return chosen


def describe(neuron: NeuronRecords) -> str:
    """The baseline sentence for one neuron."""
    mass = _Mass(neuron)
    if not mass.words:
        return NOTHING
    chosen = mass.listed()
    text = _word_list([mass.shown[key] for key in chosen])
    total = sum(mass.words.values())
    if mass.domains:
        domain, share = _ranked(mass.domains)[0]
        if share >= DOMAIN_SHARE * total:
            text += f" (mostly in {domain} samples)"
    before: defaultdict[str, float] = defaultdict(float)
    for key in chosen:
        for word, weight in mass.before[key].items():
            before[word] += weight
    chosen_mass = sum(mass.words[key] for key in chosen)
    if before:
        word, share = _ranked(before)[0]
        if share >= CONTEXT_SHARE * chosen_mass:
            text += f"{CONTEXT_LEAD}{quote(word)}"
    return text


class BaselineExplainer:
    """Explainer backend `baseline`: offline, deterministic, from activation statistics."""

    backend = "baseline"
    model = "baseline-v1"
    prompt_version = "baseline-text-1"

    def explain(self, neurons: Sequence[NeuronRecords]) -> list[ExplainerResult]:
        return [ExplainerResult(text=describe(neuron)) for neuron in neurons]
