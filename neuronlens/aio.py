"""`AsyncClient`: the asyncio twin of `Client` (same methods, awaited; `iter_reports` is async).

Request bodies, answer parsing and retry decisions are shared with `Client` (neuronlens._core).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from neuronlens import _core
from neuronlens._contract import ExplanationAccepted, JobStatus, ModelSpec, NeuronReport, PipelineOptions
from neuronlens._core import Neurons, ProgressFn, RetryPolicy
from neuronlens.errors import JobNotFinished, WaitTimeout


class AsyncClient:
    """Asynchronous client of one NeuronLens API; arguments as for `neuronlens.Client`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_retry_wait_s: float = 30.0,
        poll_interval_s: float = 0.5,
    ):
        self.url = _core.base_url(url)
        self.retry = RetryPolicy(retries=retries, backoff_s=backoff_s, max_wait_s=max_retry_wait_s)
        self.poll_interval_s = poll_interval_s
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout_s, headers=_core.auth_headers(api_key)
        )

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
                delay = self.retry.delay(attempt, None, exc)
                if delay is None:
                    raise _core.unreachable(self.url, exc) from exc
            else:
                delay = self.retry.delay(attempt, response, None)
                if delay is None:
                    return _core.check(response, self.url)
            await asyncio.sleep(delay)
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
            if not _core.finished_or_raise(status):
                raise JobNotFinished(f"job {job_id} is {status.status}; wait for it before reading reports")
            for report in status.reports or []:
                yield report
            offset += page_size
            if offset >= (status.reports_total or 0):
                return

    async def submit(
        self,
        model: str,
        layer: int,
        neurons: Neurons,
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
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        idle = _core.IdleQueueWarning()
        while True:
            status = await self.job(job_id, limit=1)
            idle(status)
            if progress is not None:
                progress(status)
            if _core.finished_or_raise(status):
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} is still {status.status} after {timeout_s:g}s")
            await asyncio.sleep(self.poll_interval_s)

    async def explain(
        self,
        model: str,
        layer: int,
        neurons: Neurons,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> list[NeuronReport]:
        answer = await self.submit(model, layer, neurons, options=options, **fields)
        if isinstance(answer, JobStatus):
            return list(answer.reports or [])
        await self.wait(answer.job_id, progress=progress, timeout_s=timeout_s)
        return [report async for report in self.iter_reports(answer.job_id)]
