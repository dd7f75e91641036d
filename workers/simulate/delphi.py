"""Detection and fuzzing as Delphi scores them (protocol `delphi`; EleutherAI/delphi, scorers/classifier/
and log/result_analysis.py), written for NeuronLens. docs/method.md#protocols says what maps to what.

- Examples: the held-out activating records (drawn across quantiles, workers/vocabulary/protocols.py) are
  positives, the held-out non-activating random records negatives, with no relabelling.
- Text: each token as the text it decodes to (``Ġ``/``▁`` a leading space, ``##`` glued, a word-start
  WordPiece token after a space), joined without separators; marked tokens between ``<<`` and ``>>``, a
  run of adjacent marked tokens inside ONE pair. Detection shows no marks.
- Fuzzing marks: on an activating record, every token whose activation is at least MARK_SHARE × the
  record's own max; on a non-activating record, `n_incorrect` tokens, n_incorrect = ceil(mean number of
  tokens above 0 per activating record): the token at len − len // 4, then the rest drawn by Python's
  `random.sample` seeded with 22 afresh for each record (Delphi treats these records' activations as 0,
  so every token may be drawn).
- Order: the items shuffled by `random.Random(42)`; the judge asks `batch` per request for its JSON list.
- Metrics over the parsed answers, as Delphi's `compute_confusion` / `compute_classification_metrics` /
  `compute_auc`: balanced accuracy, precision, recall, F1 and, where the judge returned logprobs, the ROC
  AUC of P(1) = P(tokens "1") / (P("0") + P("1")) over the top 5 alternatives of each answer token.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from service.contract import BinaryScore
from workers.llm.caller import TokenLogprob
from workers.simulate.binary import Judge, JudgedText, Kind, OpenAIJudge, balanced_accuracy
from workers.vocabulary.records import ActivationRecord

MARK_SHARE = 0.3
"""Delphi's fuzzing threshold: a token is marked when its activation is ≥ this share of its record's max."""
FALSE_MARK_SEED = 22
"""Delphi seeds Python's `random` with 22 before drawing each non-activating record's false marks."""
SHUFFLE_SEED = 42
"""Delphi's classifier shuffles its samples with `random.Random(42)`."""
LEFT, RIGHT = "<<", ">>"


def pieces(tokens: Sequence[str]) -> list[str]:
    """Each token as the text it decodes to, so that ``"".join(pieces(tokens))`` is the sample's text."""
    bpe = any(token.startswith(("Ġ", "▁")) for token in tokens)
    out: list[str] = []
    for index, token in enumerate(tokens):
        if token.startswith(("Ġ", "▁")):
            out.append(" " + token[1:])
        elif token.startswith("##") or bpe or index == 0:
            out.append(token.removeprefix("##"))
        else:
            out.append(" " + token)
    return out


def highlight(parts: Sequence[str], marked: set[int]) -> str:
    """The parts joined, each run of adjacent marked parts inside one ``<<`` … ``>>``."""
    out: list[str] = []
    for index, part in enumerate(parts):
        opens = index in marked and index - 1 not in marked
        closes = index in marked and index + 1 not in marked
        out.append((LEFT if opens else "") + part + (RIGHT if closes else ""))
    return "".join(out)


def true_marks(activations: np.ndarray) -> set[int]:
    """Tokens at or above MARK_SHARE of the record's max activation."""
    acts = np.asarray(activations, dtype=np.float64)
    if not acts.size:
        return set()
    return {int(i) for i in np.flatnonzero(acts >= MARK_SHARE * float(acts.max()))}


def n_incorrect(activating: Sequence[ActivationRecord]) -> int:
    """ceil of the mean number of tokens above 0 per activating record (Delphi counts non-zero tokens of
    its latents, which are never below 0)."""
    if not activating:
        return 0
    return math.ceil(sum(int((np.asarray(r.activations) > 0).sum()) for r in activating) / len(activating))


def false_marks(length: int, n: int) -> set[int]:
    """`n` tokens of a non-activating record of `length` tokens: len − len // 4, then seeded draws."""
    count = min(n, length)
    if count <= 0:
        return set()
    rng = random.Random(FALSE_MARK_SEED)
    first = length - length // 4
    if first < length:
        rest = [i for i in range(length) if i != first]
        return {first, *rng.sample(rest, count - 1)}
    return set(rng.sample(range(length), count))


def delphi_items(
    kind: Kind, activating: Sequence[ActivationRecord], non_activating: Sequence[ActivationRecord]
) -> list[JudgedText]:
    """Non-activating records (negatives) then activating records (positives), as Delphi prepares them."""
    n_false = n_incorrect(activating)
    items: list[JudgedText] = []
    for record, positive in [(r, False) for r in non_activating] + [(r, True) for r in activating]:
        parts = pieces(record.tokens)
        if kind == "detection":
            marks: set[int] = set()
        else:
            marks = true_marks(record.activations) if positive else false_marks(len(parts), n_false)
        items.append(JudgedText(record.record, tuple(sorted(marks)), positive, highlight(parts, marks)))
    return items


def answer_probabilities(logprobs: list[TokenLogprob] | None, count: int) -> list[float | None] | None:
    """P(1) per answer token of a reply: each token holding "1" or "0", from its top alternatives
    (holding "0": P(0); else holding "1": P(1)); 0.0 when neither appears; None unless `count` are found."""
    if logprobs is None:
        return None
    found: list[float | None] = []
    for token in logprobs:
        if "1" not in token.token and "0" not in token.token:
            continue
        p0 = sum(math.exp(lp) for alt, lp in token.top if "0" in alt)
        p1 = sum(math.exp(lp) for alt, lp in token.top if "0" not in alt and "1" in alt)
        found.append(p1 / (p0 + p1) if p0 + p1 > 0 else 0.0)
    return found if len(found) == count else None


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties count half); None when a class is empty."""
    pos = np.array([s for s, t in zip(scores, truth, strict=True) if t], dtype=np.float64)
    neg = np.array([s for s, t in zip(scores, truth, strict=True) if not t], dtype=np.float64)
    if not pos.size or not neg.size:
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def delphi_metrics(
    answers: Sequence[int | None], probabilities: Sequence[float | None], truth: Sequence[bool]
) -> dict[str, float | None]:
    """Delphi's metrics over the parsed answers (precision, recall, F1: 0 when undefined, as theirs)."""
    parsed = [(a, t) for a, t in zip(answers, truth, strict=True) if a is not None]
    tp = sum(1 for a, t in parsed if a and t)
    fp = sum(1 for a, t in parsed if a and not t)
    pos = sum(1 for _, t in parsed if t)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / pos if pos else 0.0
    scored = [(p, t) for p, t in zip(probabilities, truth, strict=True) if p is not None]
    return {
        "balanced_accuracy": balanced_accuracy(answers, truth),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": roc_auc([t for _, t in scored], [p for p, _ in scored]) if scored else None,
    }


def delphi_score(
    kind: Kind,
    judge: Judge,
    explanation: str,
    activating: Sequence[ActivationRecord],
    non_activating: Sequence[ActivationRecord],
    prompt_version: str | None,
) -> BinaryScore:
    """Detection or fuzzing of one explanation under the `delphi` protocol."""
    items = delphi_items(kind, activating, non_activating)
    random.Random(SHUFFLE_SEED).shuffle(items)
    if isinstance(judge, OpenAIJudge):
        answers, probabilities, usage = judge.judge_with_probabilities(
            kind, explanation, items, answer_probabilities
        )
    else:
        answers, usage = judge.judge(kind, explanation, items)
        probabilities = [None] * len(items)
    truth = [item.positive for item in items]
    return BinaryScore(
        n_positive=sum(truth),
        n_negative=len(truth) - sum(truth),
        parse_failures=sum(a is None for a in answers),
        llm_calls=usage.calls,
        prompt_version=prompt_version,
        **delphi_metrics(answers, probabilities, truth),
    )
