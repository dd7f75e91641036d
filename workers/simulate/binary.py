"""Detection and fuzzing scores (Paulo et al. 2024, "Automatically interpreting millions of features in
large language models"; EleutherAI/delphi's DetectionScorer and FuzzingScorer), written for NeuronLens.

Both ask a judge yes/no questions about held-out records and report balanced accuracy,
(true-positive rate + true-negative rate) / 2, so 0.5 is chance whatever the class sizes.
- Detection: does this text contain what the explanation describes? Positives: the held-out top records
  (and random records the neuron fires on as on a top record); negatives: the other held-out random
  records.
- Fuzzing: are the marked tokens (``<<token>>``) what the explanation describes? Positives: held-out top
  records with their active tokens marked (normalised activation above MARK_SHARE of the record's max);
  negatives: the same records with as many marks moved to random unmarked tokens (seeded), as Delphi does.
Records are shuffled (seeded) and sent `batch` per request; the reply is a JSON object
``{"detections": [0|1, …]}`` or ``{"fuzzing": [0|1, …]}`` with one value per text. A reply that does
not parse is asked for once more; its records are then parse failures, left out of the accuracy.
The `baseline` judge answers from the baseline simulator's predictions (≥ 5 of 10: fires).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from service.contract import BinaryScore
from workers.llm.caller import LLMCaller, Message, TokenLogprob, TokenUsage
from workers.simulate.baseline import predict_record
from workers.vocabulary.prompting import COMPLETION_PHRASE
from workers.vocabulary.records import ActivationRecord, TokenRecord
from workers.vocabulary.text_phrase import parse_text_phrase

Kind = Literal["detection", "fuzzing"]
DETECTION_PROMPT_VERSION = "detection-1"
FUZZING_PROMPT_VERSION = "fuzzing-1"
MARK_SHARE = 0.5
"""Fuzzing marks tokens above this share of the record's max activation."""
FIRES = 5.0
"""Baseline judge: a prediction at or above this (0–10) means the neuron fires."""
PARSE_ATTEMPTS = 2
KEYS: dict[Kind, str] = {"detection": "detections", "fuzzing": "fuzzing"}

_INTRO = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short "
    "document. Look at an explanation of what the neuron does, "
)
SYSTEMS: dict[Kind, str] = {
    "detection": _INTRO + "and decide for each text below whether the neuron fires on it, that is whether "
    "the text contains what the explanation describes.\n\n"
    'Reply with a JSON object {"detections": [...]} holding one number per text, in the order given: 1 '
    "if the neuron fires on it, 0 if not, and nothing else.",
    "fuzzing": _INTRO + "and decide for each text below whether the tokens marked <<like this>> are what "
    "the explanation describes, that is whether the neuron fires on the marked tokens.\n\n"
    'Reply with a JSON object {"fuzzing": [...]} holding one number per text, in the order given: 1 if '
    "the marked tokens are what the neuron fires on, 0 if not, and nothing else.",
}


@dataclass(frozen=True)
class JudgedText:
    """One text to judge: its tokens, the marked positions (fuzzing) and the right answer."""

    record: TokenRecord
    marks: tuple[int, ...]
    positive: bool
    text: str | None = None
    """The text as shown, when a protocol renders it itself (workers/simulate/delphi.py)."""


def render(item: JudgedText) -> str:
    """The text as the judge sees it: tokens joined (``##`` pieces glued), marked ones in ``<<…>>``."""
    if item.text is not None:
        return item.text
    parts: list[str] = []
    for index, token in enumerate(item.record.tokens):
        shown = f"<<{token}>>" if index in item.marks else token
        if token.startswith("##") and parts:
            parts[-1] += shown.replace("##", "", 1)
        else:
            parts.append(shown)
    return " ".join(parts)


def build_binary_messages(kind: Kind, explanation: str, items: Sequence[JudgedText]) -> list[Message]:
    """Chat messages asking one yes/no judgement per text."""
    texts = "\n".join(f"Text {number}: {render(item)}" for number, item in enumerate(items, start=1))
    user = (
        f"Neuron explanation: {COMPLETION_PHRASE} {explanation}\n\n{texts}\n\n"
        f'Reply with {{"{KEYS[kind]}": [...]}} holding exactly {len(items)} numbers.'
    )
    return [{"role": "system", "content": SYSTEMS[kind]}, {"role": "user", "content": user}]


def parse_binary(kind: Kind, reply: str, count: int) -> list[int] | None:
    """The 0/1 list of a reply; None unless it has exactly `count` values, each 0 or 1."""
    start, end = reply.find("{"), reply.rfind("}")
    try:
        obj = json.loads(reply[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        return None
    values = obj.get(KEYS[kind]) if isinstance(obj, dict) else None
    if not isinstance(values, list) or len(values) != count:
        return None
    if not all(v in (0, 1) and not isinstance(v, float | str) for v in values):
        return None
    return [int(v) for v in values]


def fuzzing_items(top: Sequence[ActivationRecord], rng: np.random.Generator) -> list[JudgedText]:
    """Each held-out top record correctly marked, and again with its marks moved to random tokens."""
    items: list[JudgedText] = []
    for record in top:
        acts = np.asarray(record.activations, dtype=np.float64)
        peak = float(acts.max()) if acts.size else 0.0
        marks = tuple(np.flatnonzero(acts > MARK_SHARE * peak).tolist()) if peak > 0 else ()
        if not marks:
            continue
        others = np.setdiff1d(np.arange(acts.size), marks)
        if others.size == 0:
            continue
        wrong = tuple(sorted(rng.choice(others, size=min(len(marks), others.size), replace=False).tolist()))
        items += [JudgedText(record.record, marks, True), JudgedText(record.record, wrong, False)]
    return items


def detection_items(top: Sequence[ActivationRecord], random: Sequence[ActivationRecord]) -> list[JudgedText]:
    """Held-out top records are positives; a random record is a positive too when the neuron fires on it
    as on a top record (max ≥ MARK_SHARE of the weakest top record's max), else a negative — Delphi's
    negatives are non-activating records, and a random record holding the concept is not one."""
    weakest = min((float(np.max(r.activations)) for r in top if len(r.activations)), default=0.0)
    bar = MARK_SHARE * weakest if weakest > 0 else np.inf

    def fires(record: ActivationRecord) -> bool:
        return bool(len(record.activations)) and float(np.max(record.activations)) >= bar

    positives = [JudgedText(r.record, (), True) for r in top]
    return positives + [JudgedText(r.record, (), fires(r)) for r in random]


ReadProbabilities = Callable[[list[TokenLogprob] | None, int], list[float | None] | None]
"""P(1) per answer of a reply from its tokens' logprobs (None: not derivable), given the answer count."""


class Judge(Protocol):
    def judge(
        self, kind: Kind, explanation: str, items: Sequence[JudgedText]
    ) -> tuple[list[int | None], TokenUsage]:
        """One 0/1 (None: unparsed) per item, and what it cost."""
        ...


class BaselineJudge:
    """Judges from the baseline simulator's predictions; an unparseable explanation fails every item."""

    def judge(
        self, kind: Kind, explanation: str, items: Sequence[JudgedText]
    ) -> tuple[list[int | None], TokenUsage]:
        parsed = parse_text_phrase(explanation)
        if parsed is None:
            return [None] * len(items), TokenUsage()
        answers: list[int | None] = []
        for item in items:
            predicted = predict_record(parsed, item.record)
            values = predicted[list(item.marks)] if kind == "fuzzing" else predicted
            answers.append(
                int(values.size > 0 and float(values.mean() if kind == "fuzzing" else values.max()) >= FIRES)
            )
        return answers, TokenUsage()


class OpenAIJudge:
    """Judges with the simulator model of an `openai` endpoint, `batch` texts per request."""

    def __init__(self, caller: LLMCaller, batch: int) -> None:
        self.caller = caller
        self.batch = batch

    def judge(
        self, kind: Kind, explanation: str, items: Sequence[JudgedText]
    ) -> tuple[list[int | None], TokenUsage]:
        answers, _, usage = self.judge_with_probabilities(kind, explanation, items, None)
        return answers, usage

    def judge_with_probabilities(
        self, kind: Kind, explanation: str, items: Sequence[JudgedText], read: ReadProbabilities | None
    ) -> tuple[list[int | None], list[float | None], TokenUsage]:
        """Answers and, with `read` (which asks for the top 5 logprobs), each answer's P(1) as `read`
        derives it from the reply's tokens (None where the reply did not parse or had no logprobs)."""
        answers: list[int | None] = []
        probabilities: list[float | None] = []
        usage = TokenUsage()
        for start in range(0, len(items), self.batch):
            chunk = items[start : start + self.batch]
            messages = build_binary_messages(kind, explanation, chunk)
            parsed = None
            for _ in range(PARSE_ATTEMPTS):
                reply = self.caller.chat(
                    messages,
                    model=self.caller.endpoint.simulator_model,
                    temperature=0.0,
                    max_tokens=16 + 3 * len(chunk),
                    json_mode=True,
                    top_logprobs=5 if read is not None else None,
                )
                usage += reply.usage
                parsed = parse_binary(kind, reply.texts[0], len(chunk))
                if parsed is not None:
                    break
            answers += parsed if parsed is not None else [None] * len(chunk)
            found = read(reply.logprobs[0], len(chunk)) if read is not None and parsed is not None else None
            probabilities += found if found is not None else [None] * len(chunk)
        return answers, probabilities, usage


def balanced_accuracy(answers: Sequence[int | None], truth: Sequence[bool]) -> float | None:
    """(TPR + TNR) / 2 over the parsed answers; None when either class has none."""
    pos = [a for a, t in zip(answers, truth, strict=True) if t and a is not None]
    neg = [a for a, t in zip(answers, truth, strict=True) if not t and a is not None]
    if not pos or not neg:
        return None
    return (sum(pos) / len(pos) + (len(neg) - sum(neg)) / len(neg)) / 2


def binary_score(
    kind: Kind,
    judge: Judge,
    explanation: str,
    top: Sequence[ActivationRecord],
    random: Sequence[ActivationRecord],
    seed: int,
    prompt_version: str | None,
) -> BinaryScore:
    """Detection or fuzzing score of one explanation over a neuron's held-out records."""
    rng = np.random.default_rng(seed)
    items = detection_items(top, random) if kind == "detection" else fuzzing_items(top, rng)
    order = rng.permutation(len(items))
    shuffled = [items[i] for i in order]
    answers, usage = judge.judge(kind, explanation, shuffled)
    truth = [item.positive for item in shuffled]
    return BinaryScore(
        balanced_accuracy=balanced_accuracy(answers, truth),
        n_positive=sum(truth),
        n_negative=len(truth) - sum(truth),
        parse_failures=sum(a is None for a in answers),
        llm_calls=usage.calls,
        prompt_version=prompt_version,
    )
