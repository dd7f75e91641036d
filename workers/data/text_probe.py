"""`text-probe-v1`: generated English sentences from templates and word lists (workers/data/text_vocab.py).

Sample i depends only on (seed, i): the same seed gives identical samples, and a smaller set is a prefix
of a larger one. Families take turns (sample i belongs to family i mod F), so every domain label has the
same number of samples; the family is the sample's domain label.
"""

from __future__ import annotations

import random
import re

from workers.data.base import ListProbeSet, ProbeSample
from workers.data.text_vocab import TEMPLATES, WORDS

TEXT_PROBE_ID = "text-probe-v1"
DEFAULT_SEED = 1
"""Generator seed of the registry's `text-probe-v1` (its revision pins this)."""

_SLOT = re.compile(r"\{(\w+?)(\d*)\}")
FAMILIES: tuple[str, ...] = tuple(TEMPLATES)


def _number(rng: random.Random) -> str:
    # Mostly small numbers, sometimes with more digits, so tokenisers split some of them.
    return str(rng.choice((rng.randint(1, 12), rng.randint(13, 99), rng.randint(100, 999))))


def _computed(slot: str, rng: random.Random) -> str | None:
    """Values not drawn from a word list; None when `slot` is a word list."""
    match slot:
        case "n":
            return _number(rng)
        case "big":
            return f"{rng.randint(1000, 999999):,}"
        case "year":
            return str(rng.randint(1600, 2030))
        case "day":
            return str(rng.randint(1, 28))
        case "date":
            return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2030)}"
        case "time":
            return f"{rng.randint(0, 23):02d}:{rng.choice((0, 15, 30, 45)):02d}"
        case "hour":
            return str(rng.randint(1, 12))
        case "price":
            return f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
        case "lname":
            return rng.choice(WORDS["name"]).lower()
    return None


def render_sentence(template: str, rng: random.Random, capitalise: bool = True) -> str:
    """Fill every `{slot}` of `template`; numbered slots of one list (`{colour}`, `{colour2}`) differ."""
    used: dict[str, set[str]] = {}

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        value = _computed(slot, rng)
        if value is not None:
            return value
        words = WORDS[slot]
        taken = used.setdefault(slot, set())
        choices = [word for word in words if word not in taken] or list(words)
        word = rng.choice(choices)
        taken.add(word)
        return word

    text = _SLOT.sub(fill, template)
    return text[0].upper() + text[1:] if capitalise else text


def generate_sample(index: int, seed: int = DEFAULT_SEED) -> ProbeSample:
    """Sample `index` of the probe set generated with `seed` (independent of every other index)."""
    rng = random.Random(f"{TEXT_PROBE_ID}:{seed}:{index}")
    family = FAMILIES[index % len(FAMILIES)]
    template = rng.choice(TEMPLATES[family])
    return ProbeSample(id=index, text=render_sentence(template, rng, family != "code"), domain=family)


def generate_text_probe(n_samples: int, revision: str = "1", seed: int = DEFAULT_SEED) -> ListProbeSet:
    """The first `n_samples` samples of `text-probe-v1` for `seed`."""
    samples = [generate_sample(index, seed) for index in range(n_samples)]
    return ListProbeSet(id=TEXT_PROBE_ID, revision=revision, modality="text", samples=samples)
