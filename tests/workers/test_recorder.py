"""LayerRecorder and batch planning against brute force on synthetic activations."""

from __future__ import annotations

import numpy as np
import torch

from workers.models.base import TokenizedSample
from workers.scan.recorder import EMPTY_KEY, BatchView, LayerRecorder
from workers.scan.scanner import choose_random_ids, content_activations, length_runs, plan_batches
from workers.vocabulary.records import MODALITY_TEXT

N_SAMPLES, N_NEURONS, N_TOP, MAX_TOKENS, N_DOMAINS = 40, 12, 6, 7, 3


def _synthetic() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, MAX_TOKENS + 1, size=N_SAMPLES)
    acts = [rng.normal(size=(int(n), N_NEURONS)).astype(np.float32) for n in lengths]
    domains = rng.integers(-1, N_DOMAINS, size=N_SAMPLES)  # -1: unlabelled
    return acts, domains


def _record(acts: list[np.ndarray], domains: np.ndarray, random_ids: np.ndarray) -> LayerRecorder:
    recorder = LayerRecorder(
        N_NEURONS, N_TOP, MAX_TOKENS, len(random_ids), N_DOMAINS, torch.device("cpu"), N_SAMPLES
    )
    slot_of = {int(sample): slot for slot, sample in enumerate(random_ids)}
    order = sorted(range(N_SAMPLES), key=lambda i: len(acts[i]))
    for begin in range(0, N_SAMPLES, 8):
        rows = order[begin : begin + 8]
        lengths = np.array([len(acts[i]) for i in rows])
        batch = np.full((len(rows), lengths.max(), N_NEURONS), 1e4, dtype=np.float32)  # padding holds junk
        for r, i in enumerate(rows):
            batch[r, : len(acts[i])] = acts[i]
        picked = [r for r, i in enumerate(rows) if i in slot_of]
        domain_ids = np.where(domains[rows] < 0, N_DOMAINS, domains[rows])
        view = BatchView(
            sample_ids=torch.tensor(rows),
            lengths=torch.from_numpy(lengths),
            groups=length_runs(lengths),
            domain_ids=torch.from_numpy(domain_ids),
            random_rows=torch.tensor(picked) if picked else None,
            random_slots=torch.tensor([slot_of[rows[r]] for r in picked]) if picked else None,
        )
        recorder.update(torch.from_numpy(batch), view)
    return recorder


def test_recorder_matches_brute_force() -> None:
    acts, domains = _synthetic()
    random_ids = choose_random_ids(N_SAMPLES, 5, seed=3)
    arrays = _record(acts, domains, random_ids).arrays()
    sample_max = np.stack([a.max(axis=0) for a in acts])  # [samples, neurons]
    for neuron in range(N_NEURONS):
        expected_ids = np.argsort(-sample_max[:, neuron], kind="stable")[:N_TOP]
        assert arrays["top_ids"][neuron].tolist() == expected_ids.tolist()
        np.testing.assert_allclose(arrays["top_max"][neuron], sample_max[expected_ids, neuron])
        for rank, sample in enumerate(expected_ids):
            stored = arrays["top_acts"][neuron, rank]
            n = len(acts[sample])
            assert np.array_equal(stored[:n], acts[sample][:, neuron].astype(np.float16))
            assert not stored[n:].any()  # padding stored as zeros, not the junk
        for slot, sample in enumerate(random_ids):
            n = len(acts[sample])
            assert np.array_equal(
                arrays["random_acts"][neuron, slot, :n], acts[sample][:, neuron].astype(np.float16)
            )
    np.testing.assert_allclose(arrays["global_max"], sample_max.max(axis=0))
    # every sample's max, neuron-major, fp16 (what comparisons correlate), padding junk excluded
    assert np.array_equal(arrays["sample_max"], sample_max.T.astype(np.float16))
    expected_positive = np.zeros((N_NEURONS, N_DOMAINS), dtype=np.int64)
    for sample, values in enumerate(acts):
        if domains[sample] >= 0:
            expected_positive[:, domains[sample]] += (values > 0).sum(axis=0)
    assert np.array_equal(arrays["domain_positive"], expected_positive)


def test_random_records_are_seeded_and_distinct() -> None:
    first = choose_random_ids(100, 50, seed=1)
    assert first.tolist() == choose_random_ids(100, 50, seed=1).tolist()
    assert first.tolist() != choose_random_ids(100, 50, seed=2).tolist()
    assert len(set(first.tolist())) == 50
    assert sorted(choose_random_ids(7, 50, seed=1).tolist()) == list(range(7))  # fewer samples than asked


def _sample(sample_id: int, positions: list[int], length: int) -> TokenizedSample:
    return TokenizedSample(
        sample_id=sample_id,
        input_ids=np.arange(length, dtype=np.int64),
        content_positions=np.array(positions, dtype=np.int64),
        tokens=tuple(f"t{p}" for p in positions),
        modality=np.full(len(positions), MODALITY_TEXT, dtype=np.uint8),
    )


def test_plans_sort_by_length_run_longest_first_and_gather_non_contiguous_content() -> None:
    # Template tokens between content tokens (as in a vision-language prompt) force the gather path.
    samples = [_sample(0, [1, 2, 5, 6], 8), _sample(1, [1, 2], 4), _sample(2, [2, 3, 4], 6)]
    plans = plan_batches(samples, batch_size=2)
    assert [plan.rows for plan in plans] == [
        [0],
        [1, 2],
    ]  # batches of the length-sorted samples, longest first
    first = plans[1]
    assert first.content_start is None and first.width == 3
    assert first.lengths.tolist() == [2, 3] and length_runs(first.lengths) == [(0, 1, 2), (1, 2, 3)]
    positions = torch.arange(8, dtype=torch.float32)[None, :, None].expand(2, 8, 2)
    assert first.index is not None
    gathered = content_activations(positions, first, torch.from_numpy(first.index))
    assert gathered[:, :, 0].tolist() == [[1, 2, 0], [2, 3, 4]]
    # Contiguous content from one start is a slice (no copy), with no mask when rows are equally long.
    sliced_plans = plan_batches([_sample(0, [1, 2, 3], 5), _sample(1, [1, 2, 3], 5)], batch_size=4)
    assert sliced_plans[0].content_start == 1 and length_runs(sliced_plans[0].lengths) == [(0, 2, 3)]
    view = content_activations(positions, sliced_plans[0], None)
    assert view[:, :, 0].tolist() == [[1, 2, 3], [1, 2, 3]]


def test_length_runs_skip_samples_without_content() -> None:
    assert length_runs(np.array([0, 0, 2, 2, 2, 5])) == [(2, 5, 2), (5, 6, 5)]
    assert length_runs(np.array([], dtype=np.int64)) == []


def test_half_precision_activations_are_counted_exactly() -> None:
    # A bf16 model on a GPU hands the recorder bf16 activations; bf16 holds integers exactly only up to
    # 256, so a long sample's positive count must not be summed in bf16.
    n_tokens, n_neurons = 601, 3
    acts = torch.ones((1, n_tokens, n_neurons), dtype=torch.bfloat16)
    view = BatchView(
        sample_ids=torch.tensor([0]),
        lengths=torch.tensor([n_tokens]),
        groups=length_runs(np.array([n_tokens])),
        domain_ids=torch.tensor([0]),
        random_rows=None,
        random_slots=None,
    )
    recorder = LayerRecorder(n_neurons, 1, n_tokens, 0, 1, torch.device("cpu"))
    recorder.update(acts, view)
    arrays = recorder.arrays()
    assert arrays["domain_positive"][:, 0].tolist() == [n_tokens] * n_neurons
    assert arrays["top_max"][:, 0].tolist() == [1.0] * n_neurons


def _sparse_batches(acts: list[np.ndarray], batch_size: int) -> list[tuple[torch.Tensor, BatchView]]:
    """Length-sorted batches of `acts` (padding holds junk), longest first as scans run them."""
    order = sorted(range(len(acts)), key=lambda i: len(acts[i]))
    batches = []
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        lengths = np.array([len(acts[i]) for i in rows])
        batch = np.full((len(rows), max(int(lengths.max()), 1), acts[0].shape[1]), 5.0, dtype=np.float32)
        for r, i in enumerate(rows):
            batch[r, : len(acts[i])] = acts[i]
        view = BatchView(
            sample_ids=torch.tensor(rows),
            lengths=torch.from_numpy(lengths),
            groups=length_runs(lengths),
            domain_ids=torch.zeros(len(rows), dtype=torch.int64),
            random_rows=None,
            random_slots=None,
        )
        batches.append((torch.from_numpy(batch), view))
    return batches[::-1]


def _total_order(values: np.ndarray) -> np.ndarray:
    """int64 sort keys of float32 `values` in the recorder's order (-0.0 below +0.0)."""
    bits = values.view(np.int32).astype(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def test_wide_sparse_units_match_brute_force_and_zero_rows_never_take_a_slot() -> None:
    # An 8x-wide dictionary on a 384-wide hook: 3072 non-negative units, most exactly 0, many with fewer
    # than N positive samples (unit 0 never fires); plus the bit patterns a +0 tie must respect: -0.0
    # (ranks below +0), a positive that fp16 stores as +0, and negative values beside a +0 max.
    rng = np.random.default_rng(1)
    n_samples, n_units, n_top = 120, 3072, 5
    acts = []
    for length in rng.integers(1, 7, size=n_samples):
        values = np.where(rng.random((length, n_units)) < 0.004, rng.exponential(size=(length, n_units)), 0.0)
        acts.append(values.astype(np.float32))
    acts[7][:, 1] = -0.0
    acts[9][0, 2] = 1e-9
    acts[11][:, 3] = 0.0
    acts[11][0, 3] = -1.0
    acts[11][-1, 3] = 0.0
    for values in acts:
        values[:, 0] = 0.0
    batches = _sparse_batches(acts, 16)
    with torch.inference_mode():  # as scans record (and restore checkpoints)
        recorder = LayerRecorder(n_units, n_top, 6, 0, 0, torch.device("cpu"), n_samples)
        for position, (batch, view) in enumerate(batches):
            if position == 3:  # a checkpoint mid-pass resumes to the same arrays
                recorder = LayerRecorder.from_state(recorder.state(), torch.device("cpu"))
            recorder.update(batch, view)
    assert (recorder.top_key[0] == EMPTY_KEY).all()  # the all-zero unit churned no slot
    arrays = recorder.arrays()
    sample_max = np.stack([values.max(axis=0) for values in acts])
    keys = _total_order(sample_max)
    for unit in range(n_units):
        expected = np.lexsort((np.arange(n_samples), -keys[:, unit]))[:n_top]
        assert arrays["top_ids"][unit].tolist() == expected.tolist(), unit
        assert arrays["top_max"][unit].tobytes() == sample_max[expected, unit].tobytes(), unit
        for rank, sample in enumerate(expected):
            stored = arrays["top_acts"][unit, rank]
            row = acts[sample][:, unit].astype(np.float16)
            assert stored[: len(row)].tobytes() == row.tobytes() and not stored[len(row) :].any()
    assert arrays["top_ids"][0].tolist() == list(range(n_top))  # +0 ties: the lowest ids
