"""The comparison calls of `Client` and `AsyncClient` (`POST /v1/comparisons` and what follows it), as two
mixins both clients inherit: `compare`, `submit_comparison`, `estimate_comparison`, `comparison`,
`wait_comparison` and `export_comparison`. Request bodies and answers are built in neuronlens._comparing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, overload

import httpx

from neuronlens import _comparing, _core
from neuronlens._contract import PipelineOptions, comparisons
from neuronlens._core import ExportFormat, Layers, Neurons
from neuronlens.errors import ApiUnavailable, JobNotFinished, RequestRejected

ComparisonProgressFn = Callable[[comparisons.ComparisonStatus], None]
"""Called with each comparison status while waiting."""


class ComparisonMethods:
    """`Client`'s comparison calls (it provides `_request`, `url` and `poll_interval_s`)."""

    url: str
    poll_interval_s: float
    _request: Callable[..., httpx.Response]

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
        layer, a list or `"all"`; ``neurons``: indices, a range or `"all"`; ``fields``: hook, units (a
        dictionary id both models have: compare its latents), dataset,
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


class AsyncComparisonMethods:
    """`AsyncClient`'s comparison calls, awaited (it provides `_request`, `url` and `poll_interval_s`)."""

    url: str
    poll_interval_s: float
    _request: Callable[..., Awaitable[httpx.Response]]

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
