"""Held-out split and word grouping."""

from __future__ import annotations

import pytest

from workers.vocabulary.records import split_records, word_spans


def test_default_split_spreads_holdout_and_keeps_explainer_records_disjoint() -> None:
    top_ids = list(range(100, 150))  # 50 top samples
    random_ids = [103, 104, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 101, 102, 21, 22]
    split = split_records(top_ids, random_ids, n_explain=20, n_holdout=10)
    assert split.holdout_top_ranks == [2, 7, 12, 17, 22, 27, 32, 37, 42, 47]
    assert split.explain_ranks == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24]
    assert not set(split.explain_ranks) & set(split.holdout_top_ranks)
    explained = {top_ids[rank] for rank in split.explain_ranks}
    held_random = [random_ids[slot] for slot in split.holdout_random_slots]
    assert len(held_random) == 10  # 1:1 with held-out top records
    assert not explained & set(held_random)  # 103 and 104 were shown to the explainer: skipped
    assert held_random == [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]


@pytest.mark.parametrize(
    ("n_top", "n_explain", "n_holdout"), [(50, 20, 10), (30, 20, 10), (12, 20, 10), (11, 5, 3)]
)
def test_split_is_disjoint_and_sized_for_any_number_of_top_records(
    n_top: int, n_explain: int, n_holdout: int
) -> None:
    top_ids = list(range(n_top))
    random_ids = list(range(n_top - 5, n_top + 45))
    split = split_records(top_ids, random_ids, n_explain, n_holdout)
    held = split.holdout_top_ranks
    assert len(held) == min(n_holdout, n_top // 2) == len(split.holdout_random_slots)
    assert len(split.explain_ranks) == min(n_explain, n_top - len(held))
    assert set(held) <= set(range(n_top)) and not set(held) & set(split.explain_ranks)
    explained = {top_ids[r] for r in split.explain_ranks}
    assert not explained & {random_ids[s] for s in split.holdout_random_slots}
    assert split == split_records(top_ids, random_ids, n_explain, n_holdout)  # deterministic


def test_word_spans_merge_wordpiece_and_bpe_pieces() -> None:
    assert word_spans(("the", "emb", "##ed", "##ding", "is", "92", "##9")) == (
        ("the", 0, 1),
        ("embedding", 1, 4),
        ("is", 4, 5),
        ("929", 5, 7),
    )
    assert word_spans(("ĠThe", "Ġemb", "ed", "ding", ",", "Ġok")) == (
        ("The", 0, 1),
        ("embedding", 1, 4),
        (",", 4, 5),
        ("ok", 5, 6),
    )


def test_held_out_records_are_disjoint_from_explainer_records_by_text() -> None:
    top_ids = list(range(50))
    texts = {i: f"text {i}" for i in range(200)}
    texts[2] = texts[0]  # held-out rank 2 repeats explainer rank 0 verbatim
    texts[7] = texts[1]
    texts[120] = texts[3]  # a random record repeating an explainer text
    random_ids = [120, 12, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110]  # 12 is held out (rank 12)
    split = split_records(top_ids, random_ids, 20, 10, text_of=texts.__getitem__)
    shown = {texts[top_ids[r]] for r in split.explain_ranks}
    held = [texts[top_ids[r]] for r in split.holdout_top_ranks]
    assert len(held) == 10 and not shown & set(held)
    assert 2 not in split.holdout_top_ranks and 7 not in split.holdout_top_ranks
    randoms = [random_ids[s] for s in split.holdout_random_slots]
    assert 120 not in randoms and 12 not in randoms and len(randoms) == 10
    held_ids = {top_ids[r] for r in split.holdout_top_ranks}
    assert not held_ids & set(randoms)
