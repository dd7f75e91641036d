"""What `Client.compare` and `AsyncClient.compare` share, without I/O: the comparison request body, the
answers of `POST /v1/comparisons`, and when a polled comparison is done."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from neuronlens._contract import PipelineOptions, comparisons
from neuronlens._core import Layers, Neurons, neuron_choice
from neuronlens.errors import JobFailed, JobNotFinished, invalid_request

COMPARISONS_PAGE = 1000
"""Neurons fetched per `GET /v1/comparisons/{id}` page (the API's largest page)."""
ComparisonAnswer = comparisons.ComparisonAccepted | comparisons.ComparisonEstimate


def build_comparison(
    base: str,
    target: str,
    layers: Layers,
    neurons: Neurons,
    options: PipelineOptions | Mapping[str, Any] | None = None,
    **fields: Any,
) -> comparisons.ComparisonRequest:
    """A `ComparisonRequest`, validated here (bad input raises `RequestRejected` naming the field).
    ``layers``: one layer, a list or `"all"`; ``neurons`` as for `Client.submit`; ``fields``: hook,
    units, dataset, explainer, simulator, endpoint, reexplain, rule, budget, dry_run (None values are left
    out)."""
    chosen_layers: Any = [layers] if isinstance(layers, int) else layers
    if not isinstance(chosen_layers, str):
        chosen_layers = list(chosen_layers)
    body: dict[str, Any] = {"base": base, "target": target, "layers": chosen_layers}
    body["neurons"] = neuron_choice(neurons)
    body.update({name: value for name, value in fields.items() if value is not None})
    if options is not None:
        body["options"] = options.model_dump() if isinstance(options, PipelineOptions) else dict(options)
    if isinstance(body.get("rule"), comparisons.VerdictRule):
        body["rule"] = body["rule"].model_dump()
    try:
        return comparisons.ComparisonRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


def comparison_body(request: comparisons.ComparisonRequest) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


def parse_comparison(response: httpx.Response) -> ComparisonAnswer:
    """202: the comparison to follow; 200 (a dry run): its cost estimate."""
    if response.status_code == 200:
        return comparisons.ComparisonEstimate.model_validate_json(response.content)
    return comparisons.ComparisonAccepted.model_validate_json(response.content)


def comparison_finished(status: comparisons.ComparisonStatus) -> bool:
    """True once finished; raises `JobFailed` for a failed comparison."""
    if status.status == "failed":
        raise JobFailed(status.comparison_id, status.error)
    return status.status == "finished"


def finished_comparisons(status: comparisons.ComparisonStatus) -> list[comparisons.NeuronComparison]:
    """The neurons of one page of a finished comparison; `JobNotFinished` while it runs."""
    if not comparison_finished(status):
        raise JobNotFinished(
            f"comparison {status.comparison_id} is {status.status}; wait for it before reading its neurons"
        )
    return list(status.comparisons or [])


def merged(
    first: comparisons.ComparisonStatus, pages: Sequence[list[comparisons.NeuronComparison]]
) -> comparisons.ComparisonStatus:
    """``first`` (a finished status) holding every neuron of ``pages``, in order."""
    every = [item for page in pages for item in page]
    return first.model_copy(update={"comparisons": every, "comparisons_total": len(every)})


def describe_comparison(status: comparisons.ComparisonStatus) -> str:
    """One short progress line: ``cmp-… comparing 40/128 neurons (unchanged 30, changed 10)``."""
    line = f"{status.comparison_id} {status.status} {status.progress.done}/{status.progress.total} neurons"
    counts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(status.verdicts.items()) if n)
    return line + (f" ({counts})" if counts else "")
