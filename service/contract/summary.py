"""The summary row of a stored report: one row per neuron with the same column names everywhere.

The layer listing (`GET /v1/neurons/{model}/{layer}`, the viewer's layer page), the table exports (NDJSON,
CSV, Parquet: service/reports/tables.py) and the SDK's `to_dataframe` / `write_csv` all build their rows with
:func:`summary_record` / :func:`summary_row`, so a column means the same thing, under the same name, in each.
Both read a report as its parsed JSON object (a dict): the API parses stored report bytes with jiter and
never builds a pydantic model for a row (a layer export parses thousands); the SDK passes
``report.model_dump(mode="json")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from service.contract.base import ContractModel, NeuronType
from service.contract.options import option_labels
from service.contract.report import recorded_non_default_options

SUMMARY_COLUMNS: tuple[str, ...] = (
    "model", "layer", "neuron", "hook", "neuron_type", "p_visual", "p_text", "p_multimodal", "p_unknown",
    "high_confidence", "max_activation", "explanation", "correlation", "ci95_low", "ci95_high",
    "chance_p_value", "beyond_chance", "domain_specific", "llm_calls", "cost_usd", "non_default_options",
)  # fmt: skip
"""The summary columns, in order (CSV, Parquet, the SDK's DataFrame). `neuron_type` is the report's type,
`p_*` and `high_confidence` its `type_evidence`, `explanation` the explanation's text, `correlation` the
simulation score (null when undefined), `ci95_low` / `ci95_high` its bootstrap interval, `chance_p_value`
and `beyond_chance` the score against chance (`simulation.chance`: its one-sided p and verdict; null without a
chance null or when the score is undefined), `domain_specific`
the domains the neuron is specific to (a list; null without domain labels), `llm_calls` the LLM requests
made for the neuron (all roles; null in reports that do not count them), `cost_usd` their cost
(`provenance.llm_cost_usd`: null without prices and for the baseline), `non_default_options` the options
the report was made with that are not the defaults (`name=value` labels, `seed=1`; empty for a default
report)."""

LIST_COLUMNS: tuple[str, ...] = ("domain_specific", "non_default_options")
"""Columns whose value is a list of strings (CSV joins them with `;`)."""

SUMMARY_FIELDS: tuple[str, ...] = tuple(
    "ci95" if name == "ci95_low" else name for name in SUMMARY_COLUMNS if name != "ci95_high"
)
"""The keys of :func:`summary_record`, in order: the columns with the interval as one `ci95` list."""


def _llm_calls(provenance: Mapping[str, Any]) -> int | None:
    calls = provenance.get("llm_calls")
    return sum(int(n) for n in calls.values()) if isinstance(calls, dict) else None


def csv_cell(name: str, value: Any) -> Any:
    """A summary value as a CSV cell: booleans as JSON writes them (`true`, not Python's `True`), list
    columns joined with `;` (null stays an empty cell)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in LIST_COLUMNS and value is not None:
        return ";".join(value)
    return value


def summary_record(report: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of one report (its parsed JSON object) as a JSON object: the keys of
    :data:`SUMMARY_FIELDS`, `ci95` a two-number list or null (NDJSON's row)."""
    evidence = report["type_evidence"]
    simulation = report["simulation"]
    provenance = report.get("provenance") or {}
    cost = provenance.get("llm_cost_usd")
    chance = simulation.get("chance") or {}
    return {
        "model": report["model"],
        "layer": report["layer"],
        "neuron": report["neuron"],
        "hook": report["hook"],
        "neuron_type": report["neuron_type"],
        "p_visual": evidence["p_visual"],
        "p_text": evidence["p_text"],
        "p_multimodal": evidence["p_multimodal"],
        "p_unknown": evidence["p_unknown"],
        "high_confidence": evidence["high_confidence"],
        "max_activation": report["max_activation"],
        "explanation": report["explanation"]["text"],
        "correlation": simulation["correlation"],
        "ci95": simulation.get("ci95"),
        "chance_p_value": chance.get("p_value"),
        "beyond_chance": chance.get("beyond_chance"),
        "domain_specific": report.get("domain_specific"),
        "llm_calls": _llm_calls(provenance),
        "cost_usd": None if cost is None else float(cost),
        "non_default_options": option_labels(recorded_non_default_options(provenance)),
    }


def summary_row(report: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of one report (its parsed JSON object) as a flat row: the keys of
    :data:`SUMMARY_COLUMNS` in order, the interval split into `ci95_low` / `ci95_high`."""
    record = summary_record(report)
    low, high = record["ci95"] or (None, None)
    record["ci95_low"], record["ci95_high"] = low, high
    return {name: record[name] for name in SUMMARY_COLUMNS}


class NeuronSummary(ContractModel):
    """One stored report of a layer, in a few fields (`GET /v1/neurons/{model}/{layer}`)."""

    neuron: int = Field(ge=0, description="Neuron index within the layer.")
    neuron_type: NeuronType = Field(description="The report's `neuron_type`.")
    p_visual: float = Field(ge=0, le=1, description="`type_evidence.p_visual`.")
    p_text: float = Field(ge=0, le=1, description="`type_evidence.p_text`.")
    p_multimodal: float = Field(ge=0, le=1, description="`type_evidence.p_multimodal`.")
    p_unknown: float = Field(ge=0, le=1, description="`type_evidence.p_unknown`.")
    high_confidence: bool = Field(description="`type_evidence.high_confidence`.")
    max_activation: float = Field(description="Largest raw activation over the probe set.")
    explanation: str = Field(description="`explanation.text`.")
    correlation: float | None = Field(description="`simulation.correlation` (the score), −1 … 1, or null.")
    ci95: list[float] | None = Field(default=None, description="`simulation.ci95`: bootstrap 95% interval.")
    chance_p_value: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="`simulation.chance.p_value`: one-sided p of the score against its chance null; null "
        "without a chance null or when the score is undefined.",
    )
    beyond_chance: bool | None = Field(
        default=None,
        description="`simulation.chance.beyond_chance`: p below the request's `chance_alpha`; null as above.",
    )
    non_default_options: list[str] = Field(
        default_factory=list,
        description="`provenance.non_default_options` as `name=value` labels (`seed=1`); empty when the "
        "report was made with the default options.",
    )


class NeuronListing(ContractModel):
    """A page of the stored reports of one layer, one report variant, by ascending neuron index."""

    model: str = Field(description="Model id.")
    layer: int = Field(ge=0, description="Layer index.")
    variant: str = Field(description="Report variant listed (16 hex digits).")
    total: int = Field(ge=0, description="Stored reports of this layer and variant.")
    offset: int = Field(ge=0, description="Index (in ascending neuron order) of the first row.")
    neurons: list[NeuronSummary] = Field(description="The page of summary rows.")


def neuron_summary(report: Mapping[str, Any]) -> NeuronSummary:
    """The listing's row of one report (its parsed JSON object): the :class:`NeuronSummary` fields of its
    :func:`summary_record` (the listing names its model and layer once, not per row)."""
    record = summary_record(report)
    return NeuronSummary(**{name: record[name] for name in NeuronSummary.model_fields})
