"""`AsyncClient`: the asyncio twin of `Client` (same methods, awaited; `iter_reports` is async).

Request bodies, answer parsing and retry decisions are shared with `Client` (neuronlens._core).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, overload

import httpx

from neuronlens import _comparing, _core
from neuronlens._contract import (
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


class AsyncClient(_core.ClientBase[httpx.AsyncClient]):
    """Asynchronous client of one NeuronLens API; arguments as for `neuronlens.Client`."""

    http_class = httpx.AsyncClient

    async def aclose(self) -> None:
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
        response = await self._request("GET", "/v1/models")
        return [ModelSpec.model_validate(item) for item in response.json()]

    async def job(self, job_id: str, offset: int = 0, limit: int = _core.REPORTS_PAGE) -> JobStatus:
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

    async def submit(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> ExplanationAccepted | JobStatus:
        request = _core.build_request(model, layer, neurons, options, **fields)
        response = await self._request("POST", "/v1/explanations", json=_core.request_body(request))
        return _core.parse_submission(response)

    async def wait(
        self, job_id: str, progress: ProgressFn | None = None, timeout_s: float | None = None
    ) -> JobStatus:
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
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> list[NeuronReport]:
        answer = await self.submit(model, layer, neurons, options=options, **fields)
        if isinstance(answer, JobStatus):
            if progress is not None:
                progress(answer)
            if len(answer.reports or []) >= (answer.reports_total or 0):
                return list(answer.reports or [])
            return [report async for report in self.iter_reports(answer.job_id)]
        await self.wait(answer.job_id, progress=progress, timeout_s=timeout_s)
        return [report async for report in self.iter_reports(answer.job_id)]

    # ------------------------------------------------------------------ comparing

    async def submit_comparison(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonAccepted:
        """`POST /v1/comparisons`: the accepted comparison; see `Client.submit_comparison`."""
        request = _comparing.build_comparison(base, target, layers, neurons, options, **fields)
        response = await self._request("POST", "/v1/comparisons", json=_comparing.comparison_body(request))
        answer = _comparing.parse_comparison(response)
        if not isinstance(answer, comparisons.ComparisonAccepted):
            raise ApiUnavailable("the API answered a comparison with a cost estimate; is it a dry run?")
        return answer

    async def estimate_comparison(
        self,
        base: str,
        target: str,
        layers: Layers,
        neurons: Neurons,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> comparisons.ComparisonEstimate:
        """What the comparison would cost; nothing is enqueued. See `Client.estimate_comparison`."""
        request = _comparing.build_comparison(base, target, layers, neurons, options, dry_run=True, **fields)
        response = await self._request("POST", "/v1/comparisons", json=_comparing.comparison_body(request))
        return comparisons.ComparisonEstimate.model_validate_json(response.content)

    async def comparison(
        self, comparison_id: str, offset: int = 0, limit: int = _core.REPORTS_PAGE
    ) -> comparisons.ComparisonStatus:
        """A comparison's status and, once finished, one page of its neurons; see `Client.comparison`."""
        params = {"offset": offset, "limit": limit}
        response = await self._request("GET", f"/v1/comparisons/{comparison_id}", params=params)
        return comparisons.ComparisonStatus.model_validate_json(response.content)

    async def wait_comparison(
        self,
        comparison_id: str,
        progress: ComparisonProgressFn | None = None,
        timeout_s: float | None = None,
    ) -> comparisons.ComparisonStatus:
        """Poll until it finishes; its status with every neuron. See `Client.wait_comparison`."""
        poll = _core.Poll(
            comparison_id, progress, timeout_s, None, _comparing.comparison_finished, "comparison"
        )
        while not poll.done(await self.comparison(comparison_id, limit=1)):
            await asyncio.sleep(self.poll_interval_s)
        page = _comparing.COMPARISONS_PAGE
        first = await self.comparison(comparison_id, limit=page)
        pages = [_comparing.finished_comparisons(first)]
        for offset in range(page, first.comparisons_total or 0, page):
            status = await self.comparison(comparison_id, offset, page)
            pages.append(_comparing.finished_comparisons(status))
        return _comparing.merged(first, pages)

    @overload
    async def compare(
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
    async def compare(
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

    async def compare(
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
        """Submit a comparison and (``wait``) return its finished status with every neuron; see
        `Client.compare`."""
        accepted = await self.submit_comparison(base, target, layers, neurons, options=options, **fields)
        if not wait:
            return accepted
        return await self.wait_comparison(accepted.comparison_id, progress=progress, timeout_s=timeout_s)

    async def export_comparison(
        self,
        comparison_id: str,
        format: ExportFormat = "ndjson",
        output: str | os.PathLike[str] | None = None,
    ) -> bytes:
        """A finished comparison as one table; see `Client.export_comparison`."""
        path = f"/v1/comparisons/{comparison_id}/rows"
        try:
            response = await self._request("GET", path, params={"format": format})
        except RequestRejected as exc:
            if exc.status_code == 409:
                raise JobNotFinished(f"comparison {comparison_id} is not finished: {exc}") from exc
            raise
        return _core.exported(response, output)
