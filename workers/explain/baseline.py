"""The offline, deterministic baseline explainer (`baseline` / `baseline-v1`, rules `baseline-text-3`).

From the explainer records' normalised activations it finds the words (sub-word pieces merged) that carry
most of the squared activation mass, the word that most often precedes them, and the domain most of the
mass comes from. Before quoting single tokens it names a token class when one explains the neuron
(workers/vocabulary/token_classes.py): numbers, punctuation marks, capitalised names, sub-word pieces, or a
word family sharing a stem of ≥ 4 letters. A class is named when its words carry ≥ CLASS_SHARE of the mass, at
least two distinct words of it are active, and ≥ CLASS_PRECISION of its occurrences in the shown records are
active (so a neuron firing on one number among many is not a number neuron). E.g. `numbers (digit tokens),
e.g. "2965" and "3"` or `the tokens "red", "blue" and "green" (mostly in colours samples), often after "the"`.
Class phrases and quoted tokens are the contract with the simulators: they predict from them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from workers.explain.base import ExplainerResult
from workers.vocabulary.records import MODALITY_TEXT, NeuronRecords, word_layout
from workers.vocabulary.text_phrase import CONTEXT_LEAD, quote
from workers.vocabulary.token_classes import (
    CLASS_PHRASES,
    MIN_STEM,
    STEM_PHRASE,
    digit_text,
    is_piece,
    word_class_set,
)

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
CLASS_SHARE = 0.6
"""A class is named when its words carry this share of the squared activation mass."""
CLASS_PRECISION = 0.5
"""… and this share of its occurrences in the shown records are active."""
ACTIVE = 2.0
"""Normalised activation (0–10) above which an occurrence counts as active."""
CLASS_ORDER = ("numbers", "punctuation", "names", "stem", "pieces")
"""Which class wins when two explain the same mass."""


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
        self.classes: defaultdict[str, set[str]] = defaultdict(set)
        """Word key → its classes (any occurrence)."""
        self.occurrences: list[tuple[str, frozenset[str], bool]] = []
        """(key, classes, active) for every word of the shown records."""
        self.piece_mass = 0.0
        self.pieces: set[str] = set()
        self.token_mass = 0.0
        self.digit_mass = 0.0
        self.digit_piece_mass = 0.0
        """Of ``piece_mass``, the mass on digit pieces (`##6`)."""
        """Mass on digit tokens, word starts and continuations alike (see :meth:`class_fit`)."""
        self.digits: defaultdict[str, float] = defaultdict(float)
        """Active digit token → its mass."""
        self.digit_hits: list[bool] = []
        """Whether each digit token of the shown records is active."""
        for record in neuron.records:
            if not record.tokens:
                continue
            words, keys, starts = word_layout(record.tokens)
            norm = record.normalised(neuron.max_activation)
            if not (record.record.modality == MODALITY_TEXT).all():
                norm = np.where(record.record.modality == MODALITY_TEXT, norm, -1.0)  # a word must be text
            peaks = np.maximum.reduceat(norm, starts)
            self._count_classes(record.tokens, words, keys, peaks, norm)
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

    def _count_classes(
        self,
        tokens: tuple[str, ...],
        words: tuple[str, ...],
        keys: tuple[str, ...],
        peaks: np.ndarray,
        norm: np.ndarray,
    ) -> None:
        for index, (word, key) in enumerate(zip(words, keys, strict=True)):
            classes = word_class_set(word, words[index - 1] if index else None)
            self.classes[key] |= classes
            self.occurrences.append((key, classes, bool(peaks[index] > ACTIVE)))
        bpe = any(token.startswith(("Ġ", "▁")) for token in tokens)
        positive = np.maximum(norm, 0.0) ** 2
        self.token_mass += float(positive.sum())
        for index, token in enumerate(tokens):
            digits = digit_text(token)
            if digits is not None:
                self.digit_mass += float(positive[index])
                self.digit_hits.append(bool(norm[index] > ACTIVE))
                if norm[index] > ACTIVE:
                    self.digits[digits] += float(positive[index])
            if positive[index] > 0 and is_piece(token, tokens[index - 1] if index else None, bpe):
                self.piece_mass += float(positive[index])
                if digits is not None:
                    self.digit_piece_mass += float(positive[index])
                if norm[index] > ACTIVE:
                    self.pieces.add(token)

    def members(self, name: str, stem: str = "") -> set[str]:
        """Word keys of the shown records in class `name` (`stem`: the family of that stem)."""
        if name == "stem":
            return {key for key in self.classes if key.startswith(stem)}
        return {key for key, classes in self.classes.items() if name in classes}

    def class_fit(self, name: str, stem: str = "") -> float:
        """The class's share of the mass when it passes CLASS_SHARE, two active words and
        CLASS_PRECISION; 0 otherwise."""
        total = sum(self.words.values())
        if name == "pieces":
            ok = self.token_mass > 0 and len(self.pieces) >= 2
            share = self.piece_mass / self.token_mass if ok else 0.0
            return share if share >= CLASS_SHARE else 0.0
        members = self.members(name, stem)
        share = sum(self.words.get(key, 0.0) for key in members) / total
        active = [key for key in members if self.words.get(key, 0.0) > 0]
        seen = [hit for key, _, hit in self.occurrences if key in members]
        if name == "numbers":
            share, active, seen = max((share, active, seen), self._digit_tokens(), key=lambda fit: fit[0])
        precision = sum(seen) / len(seen) if seen else 0.0
        if share < CLASS_SHARE or len(active) < 2 or precision < CLASS_PRECISION:
            return 0.0
        return share

    def _digit_tokens(self) -> tuple[float, list[str], list[bool]]:
        """Numbers counted on tokens: where numbers are split into pieces (`29`, `##6`, `##5`) or digits
        continue other words, the digit tokens carry the mass that whole number words do not."""
        share = self.digit_mass / self.token_mass if self.token_mass > 0 else 0.0
        return share, list(self.digits), self.digit_hits

    def stem(self) -> str:
        """The longest prefix (≥ MIN_STEM letters) of the strongest word that a fitting family shares."""
        best = _ranked(self.words)[0][0]
        for length in range(len(best), MIN_STEM - 1, -1):
            if best[:length].isalpha() and self.class_fit("stem", best[:length]) > 0:
                return best[:length]
        return ""

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


def _class_phrase(mass: _Mass) -> tuple[str, set[str]] | None:
    """The best-fitting class's phrase (with up to three quoted examples) and its member words."""
    stem = mass.stem()
    fits = {name: mass.class_fit(name, stem) for name in CLASS_ORDER if name != "stem" or stem}
    name = max(fits, key=lambda n: (fits[n], -CLASS_ORDER.index(n)), default=None)
    if name is None or fits[name] <= 0:
        return None
    if name == "pieces" and mass.digit_piece_mass >= CLASS_SHARE * mass.piece_mass:
        name = "numbers"  # the continuations that fire are digits: name the class of the firing tokens
    if name == "pieces":
        return CLASS_PHRASES["pieces"], set()
    members = mass.members(name, stem)
    shown = [mass.shown[key] for key, _ in _ranked(mass.words) if key in members][:3]
    if name == "numbers" and len(shown) < 2:  # digits inside other words: quote the digit tokens
        shown = [digits for digits, _ in _ranked(mass.digits)][:3]
    phrase = STEM_PHRASE.format(stem=stem) if name == "stem" else CLASS_PHRASES[name]
    quoted = ", ".join(quote(word) for word in shown)
    return f"{phrase}, e.g. {quoted}", members


def describe(neuron: NeuronRecords) -> str:
    """The baseline sentence for one neuron."""
    mass = _Mass(neuron)
    if not mass.words:
        return NOTHING
    named = _class_phrase(mass)
    if named is not None:
        phrase, members = named
        rest = [key for key, value in _ranked(mass.words) if key not in members]
        rest = [key for key in rest if mass.words[key] >= MIN_SHARE_OF_BEST * _ranked(mass.words)[0][1]]
        text = phrase + (f"; also {_word_list([mass.shown[k] for k in rest[:2]])}" if rest else "")
        return _with_domain(text, mass)
    chosen = mass.listed()
    text = _word_list([mass.shown[key] for key in chosen])
    text = _with_domain(text, mass)
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


def _with_domain(text: str, mass: _Mass) -> str:
    if mass.domains:
        domain, share = _ranked(mass.domains)[0]
        if share >= DOMAIN_SHARE * sum(mass.words.values()):
            text += f" (mostly in {domain} samples)"
    return text


class BaselineExplainer:
    """Explainer backend `baseline`: offline, deterministic, from activation statistics."""

    backend = "baseline"
    model = "baseline-v1"
    prompt_version = "baseline-text-3"

    def explain(self, neurons: Sequence[NeuronRecords]) -> list[ExplainerResult]:
        return [ExplainerResult(text=describe(neuron)) for neuron in neurons]
