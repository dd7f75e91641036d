"""The method parameters of a request (its `options`): typing, scale, scorers and their limits."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, JsonValue, model_validator

from service.contract.base import ContractModel, StrictFloat, StrictInt
from service.contract.chance import MAX_CHANCE_EXPLANATIONS

TypeMethod = Literal["threshold", "permutation"]
"""How a neuron is typed: fixed thresholds per sample, plus (`permutation`) a within-sample test of the
modality each top sample peaks on."""
ScaleMethod = Literal["global-max", "quantile"]
"""What sets the 10 of the 0–10 scale."""
Scorer = Literal["simulation", "simulation-batched", "detection", "fuzzing"]
"""Explanation scorers over the held-out records."""
Protocol = Literal["neuronlens", "bills-2023", "delphi"]
"""Whose record selection and scoring a report follows (docs/method.md#protocols): the project's own, Bills
et al. 2023's (openai/automated-interpretability), or Delphi's detection and fuzzing (EleutherAI/delphi)."""
BILLS_PER_SPLIT = 5
"""Bills et al.'s `n_examples_per_split`: records shown to the explainer, and held-out top records (and as
many random ones), under `bills-2023`."""
DELPHI_QUANTILES = 10
"""Delphi's `n_quantiles`: the held-out activating records are drawn evenly from this many quantiles."""
MAX_SEED = 2**32 - 1
"""Largest seed (seeds are 0 … 2**32-1)."""


def _default_scorers() -> list[Scorer]:
    return ["simulation"]


class PipelineOptions(ContractModel):
    """Method parameters (docs/method.md); defaults follow Xu et al. 2025 and Bills et al. 2023."""

    n_top: StrictInt = Field(
        default=50, ge=10, le=200, description="Top-activating samples kept per neuron (N)."
    )
    n_explain: StrictInt = Field(
        default=20,
        ge=1,
        le=100,
        description="Top records shown to the explainer (drawn from the N top samples).",
    )
    n_holdout: StrictInt = Field(
        default=10,
        ge=1,
        le=100,
        description="Held-out top records for scoring; the same number of random records is added (1:1).",
    )
    n_exemplars: StrictInt = Field(default=20, ge=1, le=200, description="Exemplars returned in the report.")
    visual_min_tokens: StrictInt = Field(
        default=4, ge=1, le=4096, description="Visual tokens above threshold for a visual sample."
    )
    visual_threshold: StrictFloat = Field(
        default=2.0, ge=0, le=10, description="Normalised (0–10) visual threshold."
    )
    text_min_tokens: StrictInt = Field(
        default=2, ge=1, le=4096, description="Text tokens above threshold for a text sample."
    )
    text_threshold: StrictFloat = Field(
        default=3.0, ge=0, le=10, description="Normalised (0–10) text threshold."
    )
    high_confidence: StrictFloat = Field(
        default=0.8, ge=0, le=1, description="A type is high-confidence when its fraction exceeds this."
    )
    seed: StrictInt = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description="Seed for random records, splits and the bootstrap (0 … 2**32-1).",
    )
    # ---- issue 10: typing method, scale, scorers (docs/method.md: scale, neuron types, scores)
    type_method: TypeMethod = Field(
        default="threshold",
        description="`threshold`: fixed thresholds per sample (Xu et al. 2025 for vision-language models; "
        "for text-only models one text token above `text_threshold` makes a sample text-activated, see "
        "`text_model_min_tokens`). `permutation` (vision-language models only; a 422 on text models): "
        "the threshold type plus an exact within-sample test of whether the top samples peak on image "
        "rather than text tokens beyond chance (p-values in `type_evidence`; a visual or text type is "
        "high-confidence only when its p-value is below `type_alpha`).",
    )
    text_model_min_tokens: StrictInt = Field(
        default=1,
        ge=1,
        le=10,
        description="Text-only models: text tokens above `text_threshold` for a text-activated sample "
        "(Xu et al.'s `text_min_tokens` is meant for a VLM's long descriptions; a selective text neuron "
        "fires on one word per sentence).",
    )
    permutations: StrictInt = Field(
        default=1000,
        ge=100,
        le=10000,
        description="Unused: the `permutation` typing test is exact (no draws); kept so older requests "
        "parse.",
    )
    type_alpha: StrictFloat = Field(
        default=0.01,
        gt=0,
        le=0.2,
        description="Significance level of the `permutation` typing test (a visual or text type is "
        "high-confidence only when its p-value is below it).",
    )
    scale: ScaleMethod = Field(
        default="quantile",
        description="The 10 of the 0–10 scale: `global-max` (the largest activation over the probe set) or "
        "`quantile` (the `scale_quantile` quantile of the probe set's per-sample maxima, so one outlier "
        "sample does not squash every other sample).",
    )
    scale_quantile: StrictFloat = Field(
        default=0.999,
        ge=0.9,
        le=1.0,
        description="Quantile of the per-sample maxima used when `scale` is `quantile` (1.0 = global max).",
    )
    scorers: list[Scorer] = Field(
        default_factory=_default_scorers,
        min_length=1,
        max_length=4,
        description="Scorers to run over the held-out records: exactly one of `simulation` (one LLM call per "
        "record, Bills et al.) or `simulation-batched` (`batch_records` records per call; same pooled "
        "Pearson), plus optionally `detection` and `fuzzing` (balanced accuracy, Paulo et al. 2024).",
    )
    batch_records: StrictInt = Field(
        default=10, ge=2, le=40, description="Held-out records per LLM call of the batched scorers."
    )
    # ---- issue 18: every score against chance (docs/method.md#chance-level)
    chance_explanations: StrictInt = Field(
        default=5,
        ge=0,
        le=MAX_CHANCE_EXPLANATIONS,
        description="k: explanations of other neurons of the layer (the donors) simulated on each neuron's "
        "held-out records to give its score's null distribution (`simulation.chance`); k more "
        "simulations per neuron and at most k + 1 donor explanations per explain job; 0 turns it off. "
        "p is a Student t with k − 1 degrees of freedom, so a small k cannot give a small p (k = 5: p < "
        "0.001 needs z > 7.2; k = 20: z > 3.6).",
    )
    chance_alpha: StrictFloat = Field(
        default=0.01,
        gt=0,
        le=0.5,
        description="Significance level of `simulation.chance.beyond_chance` (one-sided p of the score "
        "against the null).",
    )
    protocol: Protocol = Field(
        default="neuronlens",
        description="Whose record selection and scoring to follow (docs/method.md#protocols). `neuronlens`: "
        "the project's own. `bills-2023`: Bills et al.'s splits of the top 20 records (every 4th from rank 0 "
        "to the explainer, every 4th from rank 2 and every 3rd random record from slot 1 held out; "
        "`n_explain` = `n_holdout` = 5, set when left out) and their pooled-correlation score; "
        "`simulation-batched` is refused. `delphi`: Delphi's detection and fuzzing (held-out activating "
        "records drawn across 10 quantiles of the top records, non-activating random records, marks at 0.3 "
        "of a record's max merged, precision/recall/F1/AUC); `scorers` defaults to simulation, detection and "
        "fuzzing, and must name detection or fuzzing.",
    )

    @model_validator(mode="before")
    @classmethod
    def _protocol_defaults(cls, data: object) -> object:
        """Options a protocol fixes, filled in when the request leaves them out."""
        if not isinstance(data, dict):
            return data
        if data.get("protocol") == "bills-2023":
            data = {"n_explain": BILLS_PER_SPLIT, "n_holdout": BILLS_PER_SPLIT, **data}
        elif data.get("protocol") == "delphi":
            data = {"scorers": ["simulation", "detection", "fuzzing"], **data}
        return data

    @model_validator(mode="after")
    def _protocol(self) -> PipelineOptions:
        if self.protocol == "bills-2023":
            if (self.n_explain, self.n_holdout) != (BILLS_PER_SPLIT, BILLS_PER_SPLIT):
                raise ValueError(
                    f"protocol bills-2023 fixes n_explain = n_holdout = {BILLS_PER_SPLIT} (their "
                    f"n_examples_per_split); got {self.n_explain}, {self.n_holdout}"
                )
            if "simulation-batched" in self.scorers or self.n_top < 4 * BILLS_PER_SPLIT:
                raise ValueError("protocol bills-2023 scores with `simulation` over n_top >= 20 top records")
        if self.protocol == "delphi":
            if not {"detection", "fuzzing"} & set(self.scorers):
                raise ValueError(f"protocol delphi needs the detection or fuzzing scorer; got {self.scorers}")
            if self.n_holdout < DELPHI_QUANTILES:
                raise ValueError(
                    f"protocol delphi draws held-out records from {DELPHI_QUANTILES} quantiles: "
                    f"n_holdout must be at least {DELPHI_QUANTILES}"
                )
        return self

    @model_validator(mode="after")
    def _scorers(self) -> PipelineOptions:
        sims = [name for name in self.scorers if name.startswith("simulation")]
        if len(sims) != 1 or len(set(self.scorers)) != len(self.scorers):
            raise ValueError(
                "scorers must name exactly one of simulation, simulation-batched (plus optionally "
                f"detection, fuzzing), each once; got {self.scorers}"
            )
        return self

    @model_validator(mode="after")
    def _fits(self) -> PipelineOptions:
        if self.n_explain + self.n_holdout > self.n_top:
            raise ValueError(
                f"n_explain + n_holdout ({self.n_explain} + {self.n_holdout}) "
                f"must not exceed n_top ({self.n_top})"
            )
        return self

    def non_default(self) -> dict[str, JsonValue]:
        """The options that differ from their defaults, as JSON values, by name (empty: all defaults)."""
        defaults = PipelineOptions().model_dump(mode="json")
        chosen = self.model_dump(mode="json")
        return {name: value for name, value in chosen.items() if value != defaults[name]}


SCAN_OPTIONS = ("n_top", "seed")
"""Options that change a layer's scan (they go into its scan id, workers/scan/token_keys.py `scan_id`):
another
value needs another scan of the layer. The other options change only the reports made from a scan."""


def option_labels(options: dict[str, JsonValue]) -> list[str]:
    """``name=value`` per option (strings as they are, other values as JSON), sorted by name: how
    exports, the viewer and the CLI show non-default options (``seed=1``, ``scale=global-max``)."""
    return [
        f"{name}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
        for name, value in sorted(options.items())
    ]
