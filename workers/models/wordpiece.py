"""Offline WordPiece tokenizers for the tiny generated models (tiny-llama, tiny-llava).

Built, not trained: the vocabulary is the special tokens, every whitespace-split word of the given texts
(sorted), then printable ASCII characters alone and as `##` continuations, so the same texts always give
the same ids. BOS (`<s>`) is prepended, as Llama tokenizers do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast


def wordpiece_vocabulary(texts: Iterable[str], special_tokens: tuple[str, ...]) -> list[str]:
    """`special_tokens`, every word of `texts` (sorted), then printable ASCII characters alone and as
    `##` continuations; no token twice."""
    pre_tokenize = pre_tokenizers.Whitespace().pre_tokenize_str
    words = sorted({word for text in texts for word, _ in pre_tokenize(text)})
    characters = [chr(code) for code in range(33, 127)]
    pieces = [*words, *characters, *(f"##{c}" for c in characters)]
    return [*special_tokens, *dict.fromkeys(p for p in pieces if p not in special_tokens)]


def build_wordpiece_tokenizer(
    vocabulary: list[str], special_tokens: tuple[str, ...], **options: Any
) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer over `vocabulary` (which holds `<unk>`, `<s>`, `</s>`, `<pad>`), BOS
    prepended, wrapped for transformers; `options` go to `PreTrainedTokenizerFast` as extra arguments.

    Words in the vocabulary are one token; others split into `##` pieces (greedy longest match, as BERT
    does); a word with a character outside the vocabulary becomes `<unk>`.
    """
    ids = {token: index for index, token in enumerate(vocabulary)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="<unk>", max_input_chars_per_word=100))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(list(special_tokens))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", ids["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
        model_max_length=512,
        **options,
    )
