"""`Client`: the synchronous NeuronLens SDK. Every method returns the contract's pydantic models.

    from neuronlens import Client
    with Client("http://127.0.0.1:8000") as client:
        reports = client.explain("minilm-l6", layer=3, neurons=range(0, 64))

Requests that fail with 429/502/503/504 or a connection error are retried (bounded; exponential backoff
with jitter, never shorter than `Retry-After`; the defaults ride out a 15 s API restart);
`POST /v1/explanations` is safe to repeat (a repeat joins the same job).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from neuronlens import _core
from neuronlens._comparison_methods import ComparisonMethods
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
from neuronlens.errors import ApiUnavailable, RequestRejected
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


class Client(ComparisonMethods, _core.ClientBase[httpx.Client]):
    """Client of one NeuronLens API.

    ``url`` defaults to $NEURONLENS_API_URL, else http://127.0.0.1:8000; ``api_key`` (default
    $NEURONLENS_API_KEY) is sent as `Authorization: Bearer`. ``timeout_s`` bounds each HTTP request;
    ``retries``, ``backoff_s`` and ``max_retry_wait_s`` bound the retries (see `RetryPolicy`).
    """

    http_class = httpx.Client

    def close(self) -> None:
        """Close the HTTP connections (`with Client(...) as client:` closes them on exit)."""
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

    def dictionary_quality(
        self, model: str, dictionary: str, dataset: str | None = None
    ) -> DictionaryQuality:
        """A dictionary's reconstruction quality and dead/dense latents per layer on a probe set
        (`GET /v1/models/{model}/dictionaries/{dictionary}`)."""
        response = self._request(
            "GET", _core.dictionary_path(model, dictionary), params=_core.report_params(dataset=dataset)
        )
        return DictionaryQuality.model_validate_json(response.content)

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
        units: str | None = None,
        dataset: str | None = None,
        explainer: str | None = None,
        simulator: str | None = None,
        endpoint: str | None = None,
        candidates: int | None = None,
        variant: str | None = None,
    ) -> NeuronReport:
        """One stored report (`GET /v1/neurons/{model}/{layer}/{neuron}`); `NotFound` when none is stored.
        ``units``: a dictionary id when ``neuron`` is one of its latents."""
        params = _core.report_params(
            hook=hook, units=units, dataset=dataset, explainer=explainer, simulator=simulator,
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

    def to_dataframe(
        self, job: str | ExplanationAccepted | JobStatus, fields: ExportFields = "summary"
    ) -> pandas.DataFrame:
        """A finished job's reports as a pandas DataFrame (columns `SUMMARY_COLUMNS`, one row per neuron by
        layer and neuron), read from its Parquet export: a whole model in seconds, where
        `to_dataframe(client.explain(...))` fetches and parses every full report. ``job``: its id or
        what `submit` answered. `JobNotFinished` while it runs."""
        job_id = job if isinstance(job, str) else job.job_id
        return parquet_dataframe(self.export(job_id, "parquet", fields))

    def layer_to_dataframe(
        self, model: str, layer: int, fields: ExportFields = "summary", **query: str | int | None
    ) -> pandas.DataFrame:
        """Every stored report of one layer as a pandas DataFrame, from its Parquet export; ``query`` as
        for `export_layer` (the report variant)."""
        return parquet_dataframe(self.export_layer(model, layer, "parquet", fields, None, **query))

    def jobs(
        self,
        status: str | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int = 100,
    ) -> Iterator[JobSummary]:
        """The explanation jobs (`GET /v1/jobs`), newest first, fetched a page of ``page_size`` at a time as
        the iteration goes (following each page's `next_cursor`). Filters: ``status`` (`queued`, `running`,
        `finished`, `failed`, `cancelled`), ``model`` (registry id), ``created_after`` (inclusive) and
        ``created_before`` (exclusive; datetimes, naive ones UTC, or ISO 8601 strings). With API keys on,
        a key without `admin` sees only the jobs it posted."""
        params = _core.jobs_params(status, model, created_after, created_before, page_size)
        while True:
            page = JobList.model_validate_json(self._request("GET", "/v1/jobs", params=params).content)
            yield from page.jobs
            if page.next_cursor is None:
                return
            params = {**params, "cursor": page.next_cursor}

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job (`DELETE /v1/jobs/{id}`): queued parts leave their queues, running ones stop after
        their current neuron, stored reports are kept; its status (`cancelled`, or the state it had ended
        in). `NotFound` for an unknown job; submitting the request again runs what is left."""
        response = self._request("DELETE", f"/v1/jobs/{job_id}")
        return JobStatus.model_validate_json(response.content)

    # ------------------------------------------------------------------ explaining

    def submit(
        self,
        model: str,
        layer: Layers | None = None,
        neurons: Neurons | None = None,
        *,
        options: PipelineOptions | Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        **fields: Any,
    ) -> ExplanationAccepted | JobStatus:
        """`POST /v1/explanations`: the accepted job (202), or a finished status with the first page of its
        reports (200) when all were stored already. ``layer``: one layer, a list or `"all"`; ``neurons``:
        indices, a range or `"all"` (per layer). ``fields``: hook, units (a dictionary id: explain its
        latents), dataset, explainer, simulator, endpoint, candidates. ``callback_url``: a URL the
        deployment allows, sent a signed webhook (Standard Webhooks) when the job finishes, fails or is
        cancelled (docs/api.md#webhooks). The request is validated before it is sent (`RequestRejected`
        names the field)."""
        request = _core.build_request(model, layer, neurons, options, callback_url=callback_url, **fields)
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
        callback_url: str | None = None,
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> list[NeuronReport]:
        """Submit, wait for the job and return its reports (sorted by layer, then neuron). ``layer``: one
        layer, a list of layers or `"all"`; ``neurons``: indices, a range or `"all"` (per layer);
        ``callback_url`` as for `submit`."""
        answer = self.submit(model, layer, neurons, options=options, callback_url=callback_url, **fields)
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

    # ------------------------------------------------------------------ checks (pins)

    def submit_check(
        self, pins: PinsLike, model: str | None = None, **fields: Any
    ) -> CheckAccepted | CheckEstimate:
        """`POST /v1/checks`: the accepted check (202), or with ``dry_run=True`` its estimate (200).
        ``pins``: a `PinFile` (`read_pin_file`), a `CheckRequest`, their JSON as a mapping, or a list of
        pins; ``model`` overrides the file's; ``fields``: hook, units, dataset, simulator, endpoint, options,
        budget, dry_run. Validated before it is sent (`RequestRejected` names the field)."""
        request = check_request(pins, model, **fields)
        return parse_check_submission(self._request("POST", "/v1/checks", json=check_body(request)))

    def check_status(self, check_id: str) -> CheckStatus:
        """A check's status (`GET /v1/checks/{id}`), with every pin's result once finished."""
        return CheckStatus.model_validate_json(self._request("GET", f"/v1/checks/{check_id}").content)

    def check(
        self,
        pins: PinsLike,
        model: str | None = None,
        *,
        progress: Callable[[CheckStatus], None] | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> CheckStatus:
        """Submit a check, wait for it and return its finished status: `passed`, and per pin `passed`,
        the numbers and why it failed. A failed pin is an answer, not an error; `JobFailed` when the check
        could not run, `WaitTimeout` after ``timeout_s``."""
        accepted = accepted_check(self.submit_check(pins, model, **fields))
        poll = CheckPoll(accepted.check_id, progress, timeout_s)
        while True:
            status = self.check_status(accepted.check_id)
            if poll.done(status):
                return status
            time.sleep(self.poll_interval_s)
