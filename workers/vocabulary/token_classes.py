"""Token classes the baseline explainer can name and the baseline simulator can read (issue 10).

A class is named in an explanation by a fixed phrase (CLASS_PHRASES) or, for a word family, by
`words starting with "<stem>"`; both sides of the baseline use this module, so the phrase is the contract.
Membership is decided on whole words (sub-word pieces merged, workers.vocabulary.records.word_spans), except
`pieces`, which is about the continuation tokens themselves.
"""

from __future__ import annotations

import re

NUMBER = re.compile(r"^[+-]?\d[\d,.:/%]*$")
SENTENCE_END = frozenset({".", "!", "?", '"', ":", ";"})
CLASS_PHRASES: dict[str, str] = {
    "numbers": "numbers (digit tokens)",
    "punctuation": "punctuation marks",
    "names": "capitalised names",
    "pieces": "sub-word pieces (word continuations)",
}
"""Class → the phrase that names it in an explanation."""
STEM_PHRASE = 'words starting with "{stem}"'
STEM_PATTERN = re.compile(r'words starting with "((?:[^"\\]|\\.)+)"')
MIN_STEM = 4
"""Shortest shared prefix that counts as a word family's stem."""
_BPE_START = ("Ġ", "▁")


def is_number(word: str) -> bool:
    return bool(NUMBER.match(word))


def digit_text(token: str) -> str | None:
    """The digits of a token made of digits alone (`12`, `##65`, `Ġ7`), else None: a number's pieces are
    digit tokens whether or not they start a word."""
    bare = token.removeprefix("##").lstrip("Ġ▁")
    return bare if bare.isdigit() and bare.isascii() else None


def is_punctuation(word: str) -> bool:
    return bool(word) and all(not c.isalnum() and not c.isspace() for c in word)


def is_name(word: str, sentence_start: bool) -> bool:
    """A capitalised word that does not open a sentence (uncased tokenizers never produce one)."""
    return not sentence_start and len(word) > 1 and word[0].isupper() and word[1:].islower()


def is_piece(token: str, previous: str | None, bpe: bool) -> bool:
    """A token that continues the previous word: `##x` (WordPiece) or an unmarked BPE piece."""
    if token.startswith("##"):
        return True
    return bpe and previous is not None and not token.startswith(_BPE_START) and token.isalnum()


def word_class_set(word: str, previous: str | None) -> frozenset[str]:
    """The word-level classes of `word` (`previous` is the preceding word, None at the start)."""
    classes = set()
    if is_number(word):
        classes.add("numbers")
    if is_punctuation(word):
        classes.add("punctuation")
    if is_name(word, previous is None or previous in SENTENCE_END):
        classes.add("names")
    return frozenset(classes)


def named_classes(text: str) -> tuple[set[str], list[str]]:
    """The classes (CLASS_PHRASES keys) and stems an explanation names."""
    classes = {name for name, phrase in CLASS_PHRASES.items() if phrase in text}
    stems = [stem.lower() for stem in STEM_PATTERN.findall(text)]
    return classes, stems
