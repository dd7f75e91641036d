"""`Client`: the synchronous NeuronLens SDK. Every method returns the contract's pydantic models.

    from neuronlens import Client
    with Client("http://127.0.0.1:8000") as client:
        reports = client.explain("minilm-l6", layer=3, neurons=range(0, 64))

Requests that fail with 502/503/504 or a connection error are retried (bounded, honouring `Retry-After`);
`POST /v1/explanations` is safe to repeat (a repeat joins the same job).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, overload

import httpx

from neuronlens import _comparing, _core
from neuronlens._contract import (
    CostEstimate,
    ExplanationAccepted,
    JobStatus,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    comparisons,
)
from neuronlens._core import ExportFields, ExportFormat, Layers, Neurons, ProgressFn
from neuronlens.errors import ApiUnavailable, JobNotFinished, RequestRejected

ComparisonProgressFn = Callable[[comparisons.ComparisonStatus], None]
"""Called with each comparison status while waiting."""


class Client(_core.ClientBase[httpx.Client]):
    """Client of one NeuronLens API.

    ``url`` defaults to $NEURONLENS_API_URL, else http://127.0.0.1:8000; ``api_key`` (default
    $NEURONLENS_API_KEY) is sent as `Authorization: Bearer`. ``timeout_s`` bounds each HTTP request;
    ``retries``, ``backoff_s`` and ``max_retry_wait_s`` bound the retries (see `RetryPolicy`).
    """

    http_class = httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                step = self._settle(attempt, None, exc)
            else:
                step = self._settle(attempt, response, None)
            if isinstance(step, httpx.Response):
                return step
            time.sleep(step)
            attempt += 1

    # ------------------------------------------------------------------ reading

    def models(self) -> list[ModelSpec]:
        """The served models (`GET /v1/models`): layers, neurons per layer, hook points, probe sets."""
        return [ModelSpec.model_validate(item) for item in self._request("GET", "/v1/models").json()]

    def job(self, job_id: str, offset: int = 0, limit: int = _core.REPORTS_PAGE) -> JobStatus:
        """A job's status (`GET /v1/jobs/{id}`), with one page of reports once finished."""
        params = {"offset": offset, "limit": limit}
        response = self._request("GET", f"/v1/jobs/{job_id}", params=params)
        return JobStatus.model_validate_json(response.content)

    def report(
        self,
        model: str,
        layer: int,
        neuron: int,
        *,
        hook: str | None = None,
        dataset: str | None = None,
        explainer: str | None = None,
        simulator: str | None = None,
        endpoint: str | None = None,
        candidates: int | None = None,
        variant: str | None = None,
    ) -> NeuronReport:
        """One stored report (`GET /v1/neurons/{model}/{layer}/{neuron}`); `NotFound` when none is stored."""
        params = _core.report_params(
            hook=hook, dataset=dataset, explainer=explainer, simulator=simulator,
            endpoint=endpoint, candidates=candidates, variant=variant,
        )  # fmt: skip
        response = self._request("GET", _core.report_path(model, layer, neuron), params=params)
        return NeuronReport.model_validate_json(response.content)

    def page_url(self, model: str, layer: int, neuron: int) -> str:
        """The HTML page of a stored report (default report variant)."""
        return f"{self.url}{_core.report_path(model, layer, neuron)}/page"

    def iter_reports(self, job_id: str, page_size: int = _core.REPORTS_PAGE) -> Iterator[NeuronReport]:
        """A finished job's reports, fetched one page at a time as the iteration reaches it."""
        offset = 0
        while True:
            status = self.job(job_id, offset=offset, limit=page_size)
            yield from _core.finished_page(status, job_id)
            offset += page_size
            if offset >= (status.reports_total or 0):
                return

    # ------------------------------------------------------------------ tables

    def export(
        self,
        job_id: str,
        format: ExportFormat = "ndjson",
        fields: ExportFields = "summary",
        output: str | os.PathLike[str] | None = None,
    ) -> bytes:
        """A finished job's reports as one table (`GET /v1/jobs/{id}/reports`): NDJSON, CSV or Parquet bytes,
        also written to ``output`` when given. `JobNotFinished` while the job runs or after it failed."""
        path, params = _core.export_request(f"/v1/jobs/{job_id}/reports", format, fields)
        try:
            response = self._request("GET", path, params=params)
        except RequestRejected as exc:
            raise _core.export_not_finished(exc, job_id) from exc
        return _core.exported(response, output)

    def export_layer(
        self,
        model: str,
        layer: int,
        format: ExportFormat = "ndjson",
        fields: ExportFields = "summary",
        output: str | os.PathLike[str] | None = None,
        **query: str | int | None,
    ) -> bytes:
        """Every stored report of one layer as one table (`GET /v1/neurons/{model}/{layer}?format=…`);
        ``query``: hook, dataset, explainer, simulator, endpoint, candidates (the report variant)."""
        path, params = _core.export_request(_core.layer_path(model, layer), format, fields, query)
        return _core.exported(self._request("GET", path, params=params), output)

    # ------------------------------------------------------------------ explaining

    def submit(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> ExplanationAccepted | JobStatus:
        """`POST /v1/explanations`: the accepted job (202), or a finished status with the first page of its
        reports (200) when all were stored already. ``layer``: one layer, a list or `"all"`; ``neurons``:
        indices, a range or `"all"` (per layer). ``fields``: hook, dataset, explainer, simulator,
        endpoint, candidates. The request is validated before it is sent (`RequestRejected` names the
        field)."""
        request = _core.build_request(model, layer, neurons, options, **fields)
        response = self._request("POST", "/v1/explanations", json=_core.request_body(request))
        return _core.parse_submission(response)

    def estimate(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> CostEstimate:
        """`POST /v1/explanations` with `dry_run: true`: what the request would cost (scan passes, LLM
        calls, prompt and completion tokens, USD where the endpoint has prices); nothing is enqueued.
        ``layer`` and ``neurons`` as for `submit` (one layer, a list or `"all"`; `layers=` also works)."""
        request = _core.build_request(model, layer, neurons, options, dry_run=True, **fields)
        response = self._request("POST", "/v1/explanations", json=_core.request_body(request))
        return CostEstimate.model_validate(response.json())

    def wait(
        self, job_id: str, progress: ProgressFn | None = None, timeout_s: float | None = None
    ) -> JobStatus:
        """Poll until the job finishes (its status) or fails (`JobFailed`); `WaitTimeout` after
        ``timeout_s``. ``progress`` gets every status polled."""
        poll = _core.Poll(job_id, progress, timeout_s, status_url=f"{self.url}/v1/jobs/{job_id}")
        while True:
            status = self.job(job_id, limit=1)
            if poll.done(status):
                return status
            time.sleep(self.poll_interval_s)

    def explain(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> list[NeuronReport]:
        """Submit, wait for the job and return its reports (sorted by layer, then neuron). ``layer``: one
        layer, a list of layers or `"all"`; ``neurons``: indices, a range or `"all"` (per layer)."""
        answer = self.submit(model, layer, neurons, options=options, **fields)
        if isinstance(answer, JobStatus):
            if progress is not None:
                progress(answer)
            if len(answer.reports or []) >= (answer.reports_total or 0):
                return list(answer.reports or [])
            return list(self.iter_reports(answer.job_id))
        self.wait(answer.job_id, progress=progress, timeout_s=timeout_s)
        reports = list(self.iter_reports(answer.job_id))
        if not reports:
            raise ApiUnavailable(f"job {answer.job_id} finished without reports")
        return reports

    # ------------------------------------------------------------------ comparing

    def submit_comparison(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonAccepted:
        """`POST /v1/comparisons`: the accepted comparison (`cmp-…`, its status URL). ``layers``: one
        layer, a list or `"all"`; ``neurons``: indices, a range or `"all"`; ``fields``: hook, dataset,
        explainer, simulator, endpoint, reexplain (`none`, `changed`, `all`), rule (a `VerdictRule` or
        its fields), budget. Validated before it is sent (`RequestRejected` names the field)."""
        request = _comparing.build_comparison(base, target, layers, neurons, options, **fields)
        response = self._request("POST", "/v1/comparisons", json=_comparing.comparison_body(request))
        answer = _comparing.parse_comparison(response)
        if not isinstance(answer, comparisons.ComparisonAccepted):
            raise ApiUnavailable("the API answered a comparison with a cost estimate; is it a dry run?")
        return answer

    def estimate_comparison(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonEstimate:
        """`POST /v1/comparisons` with `dry_run: true`: what the comparison would cost (the base's
        explanations, the target's scan, re-scoring and fresh-explanation calls); nothing is enqueued."""
        request = _comparing.build_comparison(base, target, layers, neurons, options, dry_run=True, **fields)
        response = self._request("POST", "/v1/comparisons", json=_comparing.comparison_body(request))
        return comparisons.ComparisonEstimate.model_validate_json(response.content)

    def comparison(
        self, comparison_id: str, offset: int = 0, limit: int = _core.REPORTS_PAGE
    ) -> comparisons.ComparisonStatus:
        """A comparison's status (`GET /v1/comparisons/{id}`): state, verdict counts and, once finished,
        one page of its NeuronComparisons in (layer, neuron) order."""
        params = {"offset": offset, "limit": limit}
        response = self._request("GET", f"/v1/comparisons/{comparison_id}", params=params)
        return comparisons.ComparisonStatus.model_validate_json(response.content)

    def wait_comparison(
        self,
        comparison_id: str,
        progress: ComparisonProgressFn | None = None,
        timeout_s: float | None = None,
    ) -> comparisons.ComparisonStatus:
        """Poll until the comparison finishes, then return its status with every neuron (all pages);
        `JobFailed` when it failed, `WaitTimeout` after ``timeout_s``. ``progress`` gets every status."""
        url = f"{self.url}/v1/comparisons/{comparison_id}"
        poll = _core.Poll(
            comparison_id, progress, timeout_s, url, _comparing.comparison_finished, "comparison"
        )
        while True:
            status = self.comparison(comparison_id, limit=1)
            if poll.done(status):
                break
            time.sleep(self.poll_interval_s)
        return self._every_neuron(comparison_id)

    def _every_neuron(self, comparison_id: str) -> comparisons.ComparisonStatus:
        page = _comparing.COMPARISONS_PAGE
        first = self.comparison(comparison_id, limit=page)
        pages = [_comparing.finished_comparisons(first)]
        for offset in range(page, first.comparisons_total or 0, page):
            pages.append(_comparing.finished_comparisons(self.comparison(comparison_id, offset, page)))
        return _comparing.merged(first, pages)

    @overload
    def compare(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        wait: Literal[True] = True,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        progress: ComparisonProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonStatus: ...

    @overload
    def compare(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        wait: Literal[False],
        options: PipelineOptions | Mapping[str, Any] | None = None,
        progress: ComparisonProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonAccepted: ...

    def compare(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        wait: bool = True,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        progress: ComparisonProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonStatus | comparisons.ComparisonAccepted:
        """Compare the neurons of ``base`` and ``target`` (two registry model ids): submit, wait and return
        the finished status with every `NeuronComparison` (verdict, agreement numbers, the base's
        explanation re-scored on the target); with ``wait=False`` the accepted comparison at once.
        Arguments as for `submit_comparison`."""
        accepted = self.submit_comparison(base, target, layers, neurons, options=options, **fields)
        if not wait:
            return accepted
        return self.wait_comparison(accepted.comparison_id, progress=progress, timeout_s=timeout_s)

    def export_comparison(
        self,
        comparison_id: str,
        format: ExportFormat = "ndjson",
        output: str | os.PathLike[str] | None = None,
    ) -> bytes:
        """A finished comparison as one table (`GET /v1/comparisons/{id}/rows`): one row per neuron with
        both sides' columns and the comparison's, as NDJSON, CSV or Parquet bytes, also written to
        ``output`` when given. `JobNotFinished` while it runs."""
        path = f"/v1/comparisons/{comparison_id}/rows"
        try:
            response = self._request("GET", path, params={"format": format})
        except RequestRejected as exc:
            if exc.status_code == 409:
                raise JobNotFinished(f"comparison {comparison_id} is not finished: {exc}") from exc
            raise
        return _core.exported(response, output)
