"""`text-probe-v2`: generated English texts with varied shapes and lengths, almost never repeated.

v1 (workers/data/text_probe.py, kept byte for byte) fills one of five templates per family: 3,177
distinct texts in 4,096 samples, and a neuron's top-50 repeats sentences. v2 keeps v1's families (domain
labels), word lists and templates as clause material, and shapes each sample from the same seeded draw:
1–3 clauses of the family (so lengths vary from a fragment to three sentences), each clause optionally
framed (a lead-in such as "According to Omar," or "In 1987,", reported speech, a question, an aside, an
exclamation, lower case), and sometimes a short fragment of slot words only. Sample i depends only on
(seed, i); the set is ≥ 97 % distinct texts (tests/workers/test_probe_sets_v2.py asserts it).
"""

from __future__ import annotations

import random

from workers.data.base import ListProbeSet, ProbeSample
from workers.data.text_probe import FAMILIES, render_sentence
from workers.data.text_vocab import TEMPLATES, WORDS

TEXT_PROBE_V2_ID = "text-probe-v2"
DEFAULT_SEED = 2
"""Generator seed of the registry's `text-probe-v2` (its revision pins this)."""

LEADS: tuple[str, ...] = (
    "According to {name},",
    "In {year},",
    "Yesterday,",
    "Honestly,",
    "Later that {weekday},",
    "As {name} {surname} put it,",
    "Back in {month},",
    "By {time},",
    "Surprisingly,",
    "Once again,",
)
"""Lead-ins put before a clause (their slots are filled like template slots)."""
TAILS: tuple[str, ...] = (
    ", or so {name} said",
    ", which surprised everyone",
    " in the end",
    ", as usual",
    " after all",
    " on {weekday}",
)
"""Asides put at the end of a clause, before its final punctuation."""
FRAGMENT_SLOTS: dict[str, tuple[str, ...]] = {
    family: tuple(sorted({slot for template in templates for slot in _slots(template)}))
    for family, templates in TEMPLATES.items()
    for _slots in [lambda t: [p.split("}")[0].rstrip("0123456789") for p in t.split("{")[1:]]]
}
"""The slots each family's templates use: material for fragments ("{colour}, {colour2}.")."""


_PROPER = frozenset(
    word for slot in ("name", "city", "country", "surname", "month", "weekday") for word in WORDS[slot]
)


def _lower_first(text: str) -> str:
    """Lower-case the first word unless it is a proper noun (a clause put after a lead-in)."""
    first = text.split(" ", 1)[0]
    return text if first in _PROPER or first[:1] in '"{$' else text[:1].lower() + text[1:]


def _clause(family: str, rng: random.Random) -> str:
    """One clause of the family, in one of several shapes."""
    sentence = render_sentence(rng.choice(TEMPLATES[family]), rng, capitalise=False)
    if family == "code":
        return sentence
    body = sentence.rstrip(".!?")
    end = sentence[len(body) :]
    shape = rng.randrange(8)
    if shape in (0, 3):
        body = _lower_first(body)
    if shape == 0:
        body = f"{render_sentence(rng.choice(LEADS), rng, capitalise=False)} {body}"
    elif shape == 1:
        body += render_sentence(rng.choice(TAILS), rng, capitalise=False)
    elif shape == 2:
        name = rng.choice(WORDS["name"])
        return f'"{body[0].upper()}{body[1:]}," {name} {rng.choice(("said", "wrote", "whispered"))}.'
    elif shape == 3 and end == ".":
        end = "?" if rng.random() < 0.5 else "!"
        body = ("is it true that " + body) if end == "?" else body
    elif shape == 4:
        slots = [s for s in FRAGMENT_SLOTS[family] if s in WORDS]
        if slots:
            words = [rng.choice(WORDS[rng.choice(slots)]) for _ in range(rng.randint(1, 3))]
            return ", ".join(words) + rng.choice((".", "...", "!"))
    text = body + end
    return text if rng.random() < 0.1 else text[0].upper() + text[1:]


def generate_sample_v2(index: int, seed: int = DEFAULT_SEED) -> ProbeSample:
    """Sample `index` of `text-probe-v2` for `seed` (independent of every other index)."""
    rng = random.Random(f"{TEXT_PROBE_V2_ID}:{seed}:{index}")
    family = FAMILIES[index % len(FAMILIES)]
    n_clauses = rng.choices((1, 2, 3), weights=(5, 4, 2))[0]
    joiner = "; " if family == "code" else " "
    text = joiner.join(_clause(family, rng) for _ in range(n_clauses))
    return ProbeSample(id=index, text=text, domain=family)


def generate_text_probe_v2(n_samples: int, revision: str = "1", seed: int = DEFAULT_SEED) -> ListProbeSet:
    """The first `n_samples` samples of `text-probe-v2` for `seed`."""
    samples = [generate_sample_v2(index, seed) for index in range(n_samples)]
    return ListProbeSet(id=TEXT_PROBE_V2_ID, revision=revision, modality="text", samples=samples)
