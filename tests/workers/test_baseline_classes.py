"""The baseline names token classes before quoting tokens, and its simulator reads them (issue 10)."""

from __future__ import annotations

import numpy as np

from workers.explain.baseline import describe
from workers.simulate.baseline import predict_record
from workers.vocabulary.records import MODALITY_TEXT, ActivationRecord, NeuronRecords, TokenRecord
from workers.vocabulary.text_phrase import parse_text_phrase as parse_explanation


def _record(sample_id: int, tokens: list[str], acts: list[float]) -> ActivationRecord:
    modality = np.full(len(tokens), MODALITY_TEXT, dtype=np.uint8)
    return ActivationRecord(
        TokenRecord(sample_id=sample_id, tokens=tuple(tokens), modality=modality),
        np.array(acts, dtype=np.float32),
    )


def _neuron(records: list[ActivationRecord]) -> NeuronRecords:
    return NeuronRecords(layer=0, neuron=0, max_activation=10.0, records=records)


def _token_record(tokens: list[str]) -> TokenRecord:
    return TokenRecord(0, tuple(tokens), np.full(len(tokens), MODALITY_TEXT, dtype=np.uint8))


def test_a_digit_neuron_is_explained_as_numbers_and_simulated_on_unseen_numbers() -> None:
    records = [
        _record(0, ["room", "29", "##65", "is", "on", "floor", "3"], [0, 9, 8, 0, 0, 0, 7]),
        _record(1, ["add", "12", "and", "7"], [0, 8, 0, 9]),
        _record(2, ["it", "costs", "45", ".", "99"], [0, 0, 8, 0, 7]),
    ]
    text = describe(_neuron(records))
    assert text.startswith("numbers (digit tokens), e.g. "), text
    parsed = parse_explanation(text)
    assert parsed is not None and parsed.classes == {"numbers"}
    unseen = predict_record(parsed, _token_record(["we", "met", "at", "88", "##1", "today"]))
    assert unseen.tolist() == [0, 0, 0, 10, 10, 0]


def test_digits_that_continue_words_are_numbers_not_word_continuations() -> None:
    """A digit neuron of a WordPiece model whose digits mostly continue other words (`r` `##2` `##d` `##2`):
    the firing pieces are digits, so the class named is numbers (quoting the digit tokens), and the
    simulator reads it as the digit tokens, not every continuation."""
    records = [
        _record(0, ["model", "r", "##2", "##d", "##2", "is", "old"], [0, 0, 9, 0, 8, 0, 0]),
        _record(1, ["take", "a", "##1", "and", "b", "##12"], [0, 0, 8, 0, 0, 9]),
        _record(2, ["the", "un", "##lock", "##ed", "door", "c", "##3"], [0, 0, 0, 0, 0, 0, 7]),
    ]
    text = describe(_neuron(records))
    assert text.startswith('numbers (digit tokens), e.g. "2", "12"'), text
    parsed = parse_explanation(text)
    assert parsed is not None and parsed.classes == {"numbers"}
    unseen = predict_record(parsed, _token_record(["x", "##7", "##y", "is", "k", "##44"]))
    assert unseen.tolist() == [0, 10, 0, 0, 0, 10]


def test_word_continuations_that_fire_on_digits_are_named_numbers() -> None:
    """Word continuations carry the mass, but the ones that fire are digits (`##65`, `##7`, `##99`) while
    many whole numbers stay silent (numbers alone do not fit): the class named is still numbers."""
    records = [
        _record(0, ["room", "29", "##65", "is"], [0, 0, 9, 0]),
        _record(1, ["add", "12", "##7", "and", "cat"], [0, 0, 8, 0, 6]),
        _record(2, ["the", "dog", "##s", "45", "##99"], [0, 5, 3, 0, 7]),
        _record(3, ["page", "3", "and", "4", "or", "5"], [0, 0, 0, 0, 0, 0]),
    ]
    text = describe(_neuron(records))
    assert text.startswith("numbers (digit tokens), e.g. "), text


def test_one_number_among_many_silent_ones_is_quoted_not_a_class() -> None:
    records = [
        _record(0, ["room", "42", "is", "on", "floor", "3"], [0, 9, 0, 0, 0, 0]),
        _record(1, ["add", "12", "and", "42"], [0, 8, 0, 9]),
        _record(2, ["the", "7", "and", "8", "or", "9"], [0, 0, 0, 0, 0, 0]),
    ]
    # Numbers carry all the mass, but only 3 of 7 number occurrences are active (< CLASS_PRECISION).
    assert describe(_neuron(records)).startswith('the tokens "42" and "12"')


def test_a_word_family_is_named_by_its_stem() -> None:
    records = [
        _record(0, ["the", "player", "was", "playing"], [0, 8, 0, 9]),
        _record(1, ["we", "played", "chess"], [0, 9, 0]),
        _record(2, ["she", "plays", "well"], [0, 7, 0]),
    ]
    text = describe(_neuron(records))
    assert text.startswith('words starting with "play"'), text
    parsed = parse_explanation(text)
    assert parsed is not None and parsed.stems == ("play",)
    assert predict_record(parsed, _token_record(["a", "playful", "dog"])).tolist() == [0, 10, 0]


def test_punctuation_and_pieces_are_classes_too() -> None:
    punct = [
        _record(0, ["wait", "!", "what", "?"], [0, 8, 0, 9]),
        _record(1, ["oh", ",", "no", "!"], [0, 7, 0, 8]),
    ]
    text = describe(_neuron(punct))
    assert text.startswith("punctuation marks"), text
    parsed = parse_explanation(text)
    assert parsed is not None
    assert predict_record(parsed, _token_record(["hi", ";", "there"])).tolist() == [0, 10, 0]
    pieces = [
        _record(0, ["emb", "##ed", "##ding", "is", "fun"], [0, 8, 9, 0, 0]),
        _record(1, ["token", "##izer", "runs"], [0, 9, 0]),
    ]
    text = describe(_neuron(pieces))
    assert text.startswith("sub-word pieces"), text
    parsed = parse_explanation(text)
    assert parsed is not None
    assert predict_record(parsed, _token_record(["walk", "##ing", "home"])).tolist() == [0, 10, 0]
