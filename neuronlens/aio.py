"""`AsyncClient`: the asyncio twin of `Client` (same methods, awaited; `iter_reports` is async).

Request bodies, answer parsing and retry decisions are shared with `Client` (neuronlens._core).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from neuronlens import _core
from neuronlens._comparison_methods import AsyncComparisonMethods
from neuronlens._contract import (
    CheckAccepted,
    CheckEstimate,
    CheckStatus,
    CostEstimate,
    DictionaryQuality,
    ExplanationAccepted,
    JobList,
    JobStatus,
    JobSummary,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
)
from neuronlens._core import ExportFields, ExportFormat, Layers, Neurons, ProgressFn
from neuronlens.errors import RequestRejected
from neuronlens.export import parquet_dataframe
from neuronlens.pins import (
    CheckPoll,
    PinsLike,
    accepted_check,
    check_body,
    check_request,
    parse_check_submission,
)

if TYPE_CHECKING:
    import pandas


class AsyncClient(AsyncComparisonMethods, _core.ClientBase[httpx.AsyncClient]):
    """Asynchronous client of one NeuronLens API; arguments as for `neuronlens.Client`."""

    http_class = httpx.AsyncClient

    async def aclose(self) -> None:
        """Close the HTTP connections (`async with AsyncClient(...) as client:` closes them on exit)."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                step = self._settle(attempt, None, exc)
            else:
                step = self._settle(attempt, response, None)
            if isinstance(step, httpx.Response):
                return step
            await asyncio.sleep(step)
            attempt += 1

    async def models(self) -> list[ModelSpec]:
        """As `Client.models`: the served models."""
        response = await self._request("GET", "/v1/models")
        return [ModelSpec.model_validate(item) for item in response.json()]

    async def dictionary_quality(
        self, model: str, dictionary: str, dataset: str | None = None
    ) -> DictionaryQuality:
        """As `Client.dictionary_quality`: a dictionary's FVU and dead/dense latents per layer."""
        params = _core.report_params(dataset=dataset)
        response = await self._request("GET", _core.dictionary_path(model, dictionary), params=params)
        return DictionaryQuality.model_validate_json(response.content)

    async def job(self, job_id: str, offset: int = 0, limit: int = _core.REPORTS_PAGE) -> JobStatus:
        """As `Client.job`: a job's status, with one page of reports once finished."""
        params = {"offset": offset, "limit": limit}
        response = await self._request("GET", f"/v1/jobs/{job_id}", params=params)
        return JobStatus.model_validate_json(response.content)

    async def report(self, model: str, layer: int, neuron: int, **query: str | int | None) -> NeuronReport:
        """One stored report; ``query``: hook, dataset, explainer, simulator, endpoint, candidates,
        variant."""
        path = _core.report_path(model, layer, neuron)
        response = await self._request("GET", path, params=_core.report_params(**query))
        return NeuronReport.model_validate_json(response.content)

    async def iter_reports(
        self, job_id: str, page_size: int = _core.REPORTS_PAGE
    ) -> AsyncIterator[NeuronReport]:
        """As `Client.iter_reports`: a finished job's reports, one page fetched at a time."""
        offset = 0
        while True:
            status = await self.job(job_id, offset=offset, limit=page_size)
            for report in _core.finished_page(status, job_id):
                yield report
            offset += page_size
            if offset >= (status.reports_total or 0):
                return

    async def export(
        self,
        job_id: str,
        format: ExportFormat = "ndjson",
        fields: ExportFields = "summary",
        output: str | os.PathLike[str] | None = None,
    ) -> bytes:
        """A finished job's reports as one table (NDJSON, CSV or Parquet bytes); see `Client.export`."""
        path, params = _core.export_request(f"/v1/jobs/{job_id}/reports", format, fields)
        try:
            response = await self._request("GET", path, params=params)
        except RequestRejected as exc:
            raise _core.export_not_finished(exc, job_id) from exc
        return _core.exported(response, output)

    async def export_layer(
        self,
        model: str,
        layer: int,
        format: ExportFormat = "ndjson",
        fields: ExportFields = "summary",
        output: str | os.PathLike[str] | None = None,
        **query: str | int | None,
    ) -> bytes:
        """Every stored report of one layer as one table; see `Client.export_layer`."""
        path, params = _core.export_request(_core.layer_path(model, layer), format, fields, query)
        return _core.exported(await self._request("GET", path, params=params), output)

    async def to_dataframe(
        self, job: str | ExplanationAccepted | JobStatus, fields: ExportFields = "summary"
    ) -> pandas.DataFrame:
        """As `Client.to_dataframe`: a finished job's reports as a DataFrame, from its Parquet export."""
        job_id = job if isinstance(job, str) else job.job_id
        return parquet_dataframe(await self.export(job_id, "parquet", fields))

    async def layer_to_dataframe(
        self, model: str, layer: int, fields: ExportFields = "summary", **query: str | int | None
    ) -> pandas.DataFrame:
        """As `Client.layer_to_dataframe`: one layer's stored reports as a DataFrame (Parquet export)."""
        return parquet_dataframe(await self.export_layer(model, layer, "parquet", fields, None, **query))

    def page_url(self, model: str, layer: int, neuron: int) -> str:
        """The HTML page of a stored report (default report variant)."""
        return f"{self.url}{_core.report_path(model, layer, neuron)}/page"

    async def jobs(
        self,
        status: str | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobSummary]:
        """As `Client.jobs`: the explanation jobs, newest first, a page at a time (`async for`)."""
        params = _core.jobs_params(status, model, created_after, created_before, page_size)
        while True:
            response = await self._request("GET", "/v1/jobs", params=params)
            page = JobList.model_validate_json(response.content)
            for summary in page.jobs:
                yield summary
            if page.next_cursor is None:
                return
            params = {**params, "cursor": page.next_cursor}

    async def cancel(self, job_id: str) -> JobStatus:
        """As `Client.cancel`: cancel a job (`DELETE /v1/jobs/{id}`); its status."""
        response = await self._request("DELETE", f"/v1/jobs/{job_id}")
        return JobStatus.model_validate_json(response.content)

    async def submit(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        **fields: Any,
    ) -> ExplanationAccepted | JobStatus:
        """As `Client.submit`: the accepted job, or the finished status when every report was stored."""
        request = _core.build_request(model, layer, neurons, options, callback_url=callback_url, **fields)
        response = await self._request("POST", "/v1/explanations", json=_core.request_body(request))
        return _core.parse_submission(response)

    async def estimate(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> CostEstimate:
        """As `Client.estimate`: a dry run's cost estimate; nothing is enqueued."""
        request = _core.build_request(model, layer, neurons, options, dry_run=True, **fields)
        response = await self._request("POST", "/v1/explanations", json=_core.request_body(request))
        return CostEstimate.model_validate(response.json())

    async def wait(
        self, job_id: str, progress: ProgressFn | None = None, timeout_s: float | None = None
    ) -> JobStatus:
        """As `Client.wait`: poll until the job finishes (`JobFailed`, `WaitTimeout` otherwise)."""
        poll = _core.Poll(job_id, progress, timeout_s, status_url=None)
        while True:
            status = await self.job(job_id, limit=1)
            if poll.done(status):
                return status
            await asyncio.sleep(self.poll_interval_s)

    async def explain(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> list[NeuronReport]:
        """As `Client.explain`: submit, wait and return the reports (by layer, then neuron)."""
        answer = await self.submit(
            model, layer, neurons, options=options, callback_url=callback_url, **fields
        )
        if isinstance(answer, JobStatus):
            if progress is not None:
                progress(answer)
            if len(answer.reports or []) >= (answer.reports_total or 0):
                return list(answer.reports or [])
            return [report async for report in self.iter_reports(answer.job_id)]
        await self.wait(answer.job_id, progress=progress, timeout_s=timeout_s)
        return [report async for report in self.iter_reports(answer.job_id)]

    # ------------------------------------------------------------------ checks (pins)

    async def submit_check(
        self, pins: PinsLike, model: str | None = None, **fields: Any
    ) -> CheckAccepted | CheckEstimate:
        """As `Client.submit_check`."""
        request = check_request(pins, model, **fields)
        return parse_check_submission(await self._request("POST", "/v1/checks", json=check_body(request)))

    async def check_status(self, check_id: str) -> CheckStatus:
        """As `Client.check_status`."""
        response = await self._request("GET", f"/v1/checks/{check_id}")
        return CheckStatus.model_validate_json(response.content)

    async def check(
        self,
        pins: PinsLike,
        model: str | None = None,
        *,
        progress: Callable[[CheckStatus], None] | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> CheckStatus:
        """As `Client.check`: submit, wait, return the finished status."""
        accepted = accepted_check(await self.submit_check(pins, model, **fields))
        poll = CheckPoll(accepted.check_id, progress, timeout_s)
        while True:
            status = await self.check_status(accepted.check_id)
            if poll.done(status):
                return status
            await asyncio.sleep(self.poll_interval_s)
