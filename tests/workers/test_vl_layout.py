"""Modality layout: image patches with their grid cell, caption text, and template tokens in neither."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data.vl_probe import QUESTION, generate_vl_probe
from workers.models.layout import LLAVA_TEMPLATE, MODALITY_TEMPLATE, QWEN2_VL_TEMPLATE, layout_batch
from workers.models.tiny_llava import build_tiny_processor, build_tiny_tokenizer
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_PAD, MODALITY_TEXT


def test_templates_render_the_documented_prompts() -> None:
    assert LLAVA_TEMPLATE.render("<image>", QUESTION, "a red star.") == (
        "USER: <image>\nDescribe the image. ASSISTANT: a red star."
    )
    assert QWEN2_VL_TEMPLATE.render("<|image_pad|>", "Q?", "cap") == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\ncap"
    )


def test_layout_of_a_real_tiny_llava_batch() -> None:
    processor = build_tiny_processor(build_tiny_tokenizer())
    samples = generate_vl_probe(2).samples[:2]
    texts = [LLAVA_TEMPLATE.render("<image>", QUESTION, s.text) for s in samples]
    features = processor(
        text=texts,
        images=[s.image for s in samples],
        padding=True,
        return_offsets_mapping=True,
        return_tensors="np",
    )
    ids = features["input_ids"]
    starts = [len(t) + 63 * len("<image>") - len(s.text) for t, s in zip(texts, samples, strict=True)]
    layout = layout_batch(
        ids,
        features["attention_mask"],
        features["offset_mapping"],
        starts,
        processor.image_token_id,
        [(8, 8), (8, 8)],
        special_ids=processor.tokenizer.all_special_ids,
        caption_lead_in=1,
    )
    for row, sample in enumerate(samples):
        tokens = processor.tokenizer.convert_ids_to_tokens(ids[row])
        codes = layout.modality[row]
        assert codes[:3].tolist() == [MODALITY_TEMPLATE] * 3  # <s> USER :
        assert codes[3:67].tolist() == [MODALITY_IMAGE] * 64
        assert layout.patch_index[row, 3:67].tolist() == list(range(64))
        assert layout.patch_row_col(row, 3 + 8 * 5 + 2) == (5, 2)
        assert [tokens[i] for i in range(67, 73)] == ["Describe", "the", "image", ".", "ASSISTANT", ":"]
        assert codes[67:73].tolist() == [MODALITY_TEMPLATE] * 6
        text = [t for t, c in zip(tokens, codes, strict=True) if c == MODALITY_TEXT]
        assert processor.tokenizer.convert_tokens_to_string(text) == sample.text.replace(" .", ".")
        assert np.all(codes[features["attention_mask"][row] == 0] == MODALITY_PAD)
    assert (layout.modality == MODALITY_PAD).any()  # the shorter caption is padded on the right
    assert layout.content_mask().sum() == 128 + (layout.modality == MODALITY_TEXT).sum()


def test_sentencepiece_style_offsets_count_the_leading_space_as_caption() -> None:
    # "USER: <image> Q ASSISTANT: a cat": tokens whose span swallows the space before them.
    text = "X: <i> Q ASSISTANT: a cat"
    spans = [(0, 0), (0, 1), (1, 2), (3, 6), (6, 8), (8, 18), (18, 19), (19, 21), (21, 25), (0, 0)]
    ids = np.array([[1, 5, 6, 9, 7, 8, 6, 10, 11, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]])
    caption_start = text.index("a cat")
    layout = layout_batch(
        ids, mask, np.array([spans]), [caption_start], 9, [(1, 1)], special_ids=[1, 0], caption_lead_in=1
    )
    assert layout.modality[0].tolist() == [
        MODALITY_TEMPLATE, MODALITY_TEMPLATE, MODALITY_TEMPLATE, MODALITY_IMAGE, MODALITY_TEMPLATE,
        MODALITY_TEMPLATE, MODALITY_TEMPLATE, MODALITY_TEXT, MODALITY_TEXT, MODALITY_PAD,
    ]  # fmt: skip
    strict = layout_batch(ids, mask, np.array([spans]), [caption_start], 9, [(1, 1)], special_ids=[1, 0])
    assert strict.modality[0, 7] == MODALITY_TEMPLATE  # without a lead-in, " a" starts before the caption


def test_wrong_patch_count_is_an_error() -> None:
    ids = np.array([[1, 9, 9, 9, 4]])
    spans = np.zeros((1, 5, 2), dtype=int)
    with pytest.raises(ValueError, match="3 image tokens; its 2×2 patch grid needs 4"):
        layout_batch(ids, np.ones_like(ids), spans, [0], 9, [(2, 2)])
    layout = layout_batch(ids, np.ones_like(ids), spans, [0], 9, [(1, 3)])
    with pytest.raises(ValueError, match="not an image patch"):
        layout.patch_row_col(0, 4)
