"""Data records shared by the scan, classification, explainers and simulators.

Token modality codes are per content position: text tokens, image-patch tokens (vision-language models),
and 0 for padding. Prompt-template tokens (BOS, "USER:", …) are never content, so they have no code.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

MODALITY_PAD = 0
"""Padding past the end of a sample's content tokens (not a token)."""
MODALITY_TEXT = 1
"""A text token: a word piece of the sample's text or caption."""
MODALITY_IMAGE = 2
"""An image-patch token of a vision-language model."""


@dataclass(frozen=True, slots=True, eq=False)
class TokenRecord:
    """One sample's content tokens, without activations: all a simulator may see."""

    sample_id: int
    """Index of the sample in the probe set."""
    tokens: tuple[str, ...]
    """Content tokens as the tokenizer spells them (word pieces keep their `##` prefix)."""
    modality: np.ndarray
    """uint8 code per token (MODALITY_TEXT or MODALITY_IMAGE), same length as `tokens`."""
    domain: str | None = None
    """Domain label of the sample (template family), when the probe set has them."""
    patch_grid: tuple[int, int] | None = None
    """[rows, cols] of the image patches, vision-language samples only."""


@dataclass(frozen=True, slots=True, eq=False)
class ActivationRecord:
    """One sample with one neuron's activation at every content token (Bills et al. 2023)."""

    record: TokenRecord
    """The sample's tokens."""
    activations: np.ndarray
    """float32 raw activation per token, same length as `record.tokens`."""

    @property
    def sample_id(self) -> int:
        return self.record.sample_id

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.record.tokens

    def normalised(self, max_activation: float) -> np.ndarray:
        """clip(10·activation/max_activation, 0, 10): the 0–10 scale explainers and classification use."""
        return normalise(self.activations, max_activation)


@dataclass(frozen=True, slots=True)
class NeuronRecords:
    """What an explainer sees of one neuron: its explainer records, highest first."""

    layer: int
    neuron: int
    max_activation: float
    """Largest raw activation over the whole probe set (the 10 of the 0–10 scale)."""
    records: list[ActivationRecord] = field(default_factory=list)
    neuron_type: str | None = None
    """Its type (visual, text, multimodal, unknown) when classified: explainers pick their prompt by it."""


def normalise(activations: np.ndarray, max_activation: float) -> np.ndarray:
    """clip(10·act/max, 0, 10) as float32; all zeros when the neuron never exceeds 0."""
    acts = np.asarray(activations, dtype=np.float32)
    if not max_activation > 0:
        return np.zeros_like(acts)
    scaled = acts * np.float32(10.0 / max_activation)
    # Two ufuncs in place: np.clip's Python-level dispatch costs more than the arithmetic on short rows.
    np.maximum(scaled, 0.0, out=scaled)
    return np.minimum(scaled, 10.0, out=scaled)


@dataclass(frozen=True, slots=True)
class RecordSplit:
    """Which records the explainer sees and which are held out for scoring (disjoint samples)."""

    explain_ranks: list[int]
    """Top-record ranks shown to the explainer: the best ones not held out."""
    holdout_top_ranks: list[int]
    """Top-record ranks held out for scoring: spread evenly over all ranks."""
    holdout_random_slots: list[int]
    """Random-record slots held out for scoring: the first ones whose sample the explainer did not see."""


def split_records(
    top_ids: Sequence[int] | np.ndarray,
    random_ids: Sequence[int] | np.ndarray,
    n_explain: int,
    n_holdout: int,
    text_of: Callable[[int], Hashable] | None = None,
) -> RecordSplit:
    """Deterministic split of the top records (rank order) and random records (draw order).

    Held-out top ranks are every k-th rank, k = n_top // n_holdout, starting at k // 2, so scoring sees
    strong and weak top records alike; with fewer top records than asked for, at most half are held
    out. With `text_of` (sample id → its text, e.g. the token tuple), held-out records are disjoint from
    the explainer's records BY TEXT: a held-out rank whose text the explainer saw (a verbatim repeat) is
    replaced by the nearest later unused rank with unseen text, or dropped. Held-out random records are as
    many as held-out top ones (1:1) when enough exist; they are never a sample (or, with `text_of`, a
    text) the explainer saw, nor the same sample as a held-out top record.
    """
    key = text_of if text_of is not None else (lambda sample: ("id", sample))
    n_top = len(top_ids)
    n_hold = min(n_holdout, n_top // 2)
    held: list[int] = []
    if n_hold > 0:
        stride = n_top // n_hold
        held = [i * stride + stride // 2 for i in range(n_hold)]
    explain = [rank for rank in range(n_top) if rank not in set(held)][:n_explain]
    seen = {key(int(top_ids[rank])) for rank in explain}
    held = _unseen_holdout(held, explain, [key(int(sample)) for sample in top_ids], seen)
    held_samples = {int(top_ids[rank]) for rank in held}
    randoms = [
        slot
        for slot, sample in enumerate(random_ids)
        if int(sample) not in held_samples
        and key(int(sample)) not in seen
        and int(sample) not in {int(top_ids[rank]) for rank in explain}
    ][: len(held)]
    return RecordSplit(explain_ranks=explain, holdout_top_ranks=held, holdout_random_slots=randoms)


def _unseen_holdout(
    held: list[int], explain: list[int], keys: list[Hashable], seen: set[Hashable]
) -> list[int]:
    """Held-out ranks with every text the explainer saw replaced by the next unused rank of unseen text."""
    taken = set(held) | set(explain)
    result: list[int] = []
    held_keys: set[Hashable] = set()
    for rank in held:
        candidate: int | None = rank
        if keys[rank] in seen or keys[rank] in held_keys:
            candidate = next(
                (
                    r
                    for r in range(rank + 1, len(keys))
                    if r not in taken and keys[r] not in seen and keys[r] not in held_keys
                ),
                None,
            )
        if candidate is not None:
            taken.add(candidate)
            result.append(candidate)
            held_keys.add(keys[candidate])
    return sorted(result)


_BPE_WORD_START = ("Ġ", "▁")


@lru_cache(maxsize=1 << 16)
def word_spans(tokens: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    """Group sub-word tokens into words: (word, start, end) with tokens[start:end] forming the word.

    WordPiece continuations start with `##`; in byte-level BPE / SentencePiece sequences (tokens marked
    with `Ġ` / `▁`) a token without the marker continues the previous word. Cached: the same samples
    recur across the neurons of a layer.
    """
    bpe = any(token.startswith(_BPE_WORD_START) for token in tokens)
    spans: list[tuple[str, int, int]] = []
    for index, token in enumerate(tokens):
        if token.startswith("##") and spans:
            word, start, _ = spans[-1]
            spans[-1] = (word + token[2:], start, index + 1)
        elif bpe and spans and not token.startswith(_BPE_WORD_START) and token.isalnum():
            word, start, _ = spans[-1]
            spans[-1] = (word + token, start, index + 1)
        else:
            spans.append((token.lstrip("".join(_BPE_WORD_START)) or token, index, index + 1))
    return tuple(spans)


@lru_cache(maxsize=1 << 16)
def word_layout(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(words, lower-cased words, first-token index of each word) of `word_spans(tokens)`, cached:
    the arrays explainers reduce activations over (np.maximum.reduceat over the starts)."""
    spans = word_spans(tokens)
    words = tuple(word for word, _, _ in spans)
    return (
        words,
        tuple(word.lower() for word in words),
        np.array([start for _, start, _ in spans], dtype=np.int64),
    )
