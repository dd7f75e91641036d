"""Numbers the authors' own code produced on the records of tests/workers/protocol_records.py, pinned for
tests/workers/test_protocols.py (their code is not in this repository; the generating scripts were not
committed either). How they were produced:

Bills et al. 2023 — openai/automated-interpretability at commit e4aa21bc8baf26ff141ccf2e6f4444dcf120193f,
package `neuron_explainer` (neuron-explainer/) imported from a snapshot (`git archive`) in a scratch
virtualenv (numpy, tiktoken, blobfile, boostedblob, orjson; OPENAI_API_KEY set to a dummy for its import-time
check, no request made). From `bills_records()`: a `NeuronRecord` with `most_positive_activation_records` =
the top records in rank order and `random_sample` = the random records (each an `ActivationRecord` of
tokens and the float32 activations as Python floats); `ActivationRecordSliceParams(n_examples_per_split=5)`
as in their demo notebook (demos/generate_and_score_explanation.ipynb);
`train_activation_records(params)` → BILLS["train_ranks"] (positions in the top list),
`valid_activation_records(params)` → BILLS["valid_top_ranks"] + BILLS["valid_random_slots"];
`calculate_max_activation(train)` → BILLS["train_max"]; `normalize_activations(r.activations, train_max)`
per train record → BILLS["discretised"]; sha256 of `format_activation_records(train, train_max)` →
BILLS["format_sha256"]; `simulate_and_score(simulator, valid)` with a `NeuronSimulator` whose `simulate`
returns `bills_predictions(tokens, seed=i)` (i = the record's position in the valid list) as
`expected_activations`, then `.get_preferred_score()` (their `correlation_score` of the flattened
records) → BILLS["ev_correlation_score"].

Delphi — EleutherAI/delphi at commit 3c2e139378b56ca02a632697b541a11aebf03855, modules loaded from a
snapshot by file (delphi/config.py, latents/latents.py, latents/samplers.py, scorers/classifier/sample.py,
scorers/classifier/classifier.py, scorers/scorer.py, clients/client.py, log/result_analysis.py; torch,
pandas, scikit-learn, plotly, simple_parsing, jaxtyping installed; the package __init__s, which load faiss
and sentence-transformers, not run). From `delphi_records()`: `ActivatingExample`s (activations as
tensors, str_tokens = the tokens with "Ġ" → " ") in rank order; `split_quantiles(examples, n_quantiles=10,
n_samples=10)` → DELPHI["positions"], DELPHI["quantiles"]. Non-activating examples: `NonActivatingExample`s
(activations zero, as Delphi's random source makes them) of the random records at
DELPHI["non_activating_slots"] (NeuronLens's choice: Delphi draws random windows from its cache; the
slots are what `workers.vocabulary.protocols.delphi_split` takes). `n_incorrect` as
`FuzzingScorer.mean_n_activations_ceil(test)`; fuzzing samples = `examples_to_samples(non_activating,
n_incorrect=n_incorrect, highlighted=True) + examples_to_samples(test, n_incorrect=0, highlighted=True)`,
detection samples = `examples_to_samples(non_activating) + examples_to_samples(test)` (what
`FuzzingScorer._prepare` / `DetectionScorer._prepare` build) → DELPHI[kind]["texts"] (sorted). Answers:
the loopback peer's rule (tests/llm_peer/rules.py `judge`) on each text with the explanation
DELPHI_EXPLANATION, and P(1) from `Classifier._parse_logprobs` on the peer's top-5 logprobs of that reply
(tests/llm_peer/replies.py `_logprobs`); a DataFrame of (activating, prediction, probability) through
`compute_confusion`, `compute_classification_metrics` and `compute_auc` → DELPHI[kind]["accuracy"]
(their class-balanced accuracy), "precision", "recall", "f1_score", "auc".
"""

from __future__ import annotations

from typing import Any

BILLS: dict[str, Any] = {
    "discretised": [
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 8, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0],
        [6, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
    "ev_correlation_score": 0.862415492123906,
    "format_sha256": "fd8a854e3312307627f8f7215e0a78bd96be2d0d33491138720a562aef625322",
    "train_max": 8.911700248718262,
    "train_ranks": [0, 4, 8, 12, 16],
    "valid_random_slots": [1, 4, 7, 10, 13],
    "valid_top_ranks": [2, 6, 10, 14, 18],
}

DELPHI_EXPLANATION = 'the tokens "red" and "car"'

DELPHI: dict[str, Any] = {
    "detection": {
        "accuracy": 0.85,
        "auc": 0.85,
        "f1_score": 0.8695652173913044,
        "precision": 0.7692307692307693,
        "recall": 1.0,
        "texts": [
            " big old a on red sat ran the a old big past",
            " big ran the red on car ran on and",
            " big red big on and big car dog and cat dog",
            " car on car mat car dog cat dog",
            " car sat red old dog ran",
            " cat mat dog ran dog car the the past",
            " dog big and cat dog on",
            " dog cat mat on big old mat",
            " mat old big red cat blue blue blue",
            " old mat old sat on a",
            " on old dog and old a mat blue the red big sat",
            " on on past the blue big dog ran",
            " on red mat sat dog on and car cat cat",
            " past a blue past dog the the cat mat",
            " past a cat car mat old sat a cat",
            " ran big big dog ran old",
            " ran ran red ran sat and big mat past",
            " red old dog big the a cat big big on",
            " sat car past red old ran ran past",
            " sat mat and a and sat big blue a ran dog past",
        ],
    },
    "fuzzing": {
        "accuracy": 0.95,
        "auc": 0.95,
        "f1_score": 0.9473684210526316,
        "precision": 1.0,
        "recall": 0.9,
        "texts": [
            " big old a on<< red>> sat ran the a old big past",
            " big ran the<< red>> on car ran on and",
            " big<< red>> big on and big car dog and cat dog",
            " car sat<< red>> old dog ran",
            " car<< on>> car mat car dog<< cat>> dog",
            " cat mat<< dog>> ran dog car the<< the>> past",
            " dog<< big>> and cat dog<< on>>",
            " dog<< cat>> mat on big old<< mat>>",
            " mat old big<< red>> cat blue blue blue",
            " old<< mat>> old sat on<< a>>",
            " on old dog and old a mat blue the<< red big>> sat",
            " on<< on>> past the blue big<< dog>> ran",
            " on<< red>> mat sat dog on and car cat cat",
            " past a<< blue>> past dog the the<< cat>> mat",
            " past a<< cat>> car mat old sat<< a>> cat",
            " ran ran<< red>> ran sat and big mat past",
            " ran<< big>> big dog ran<< old>>",
            " sat car past<< red>> old ran ran past",
            " sat mat<< and>> a and sat big blue a<< ran>> dog past",
            "<< red>> old dog big the a cat big big on",
        ],
    },
    "n_incorrect": 2,
    "non_activating_slots": [0, 1, 2, 6, 8, 11, 13, 20, 22, 23],
    "positions": [1, 6, 10, 19, 23, 26, 30, 37, 40, 46],
    "quantiles": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
}
