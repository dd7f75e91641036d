"""What `Client` and `AsyncClient` share, without I/O: request bodies, answer parsing, retry decisions."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from neuronlens._contract import (
    ExplanationAccepted,
    ExplanationRequest,
    JobStatus,
    NeuronRange,
    NeuronReport,
    PipelineOptions,
)
from neuronlens.errors import (
    ApiUnavailable,
    ClientError,
    JobFailed,
    JobNotFinished,
    RequestRejected,
    WaitTimeout,
    invalid_request,
    rejected,
)

log = logging.getLogger("neuronlens.client")

DEFAULT_URL = "http://127.0.0.1:8000"
REPORTS_PAGE = 100
"""Reports fetched per `GET /v1/jobs/{id}` page."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Answers retried: the API or its Redis is briefly unavailable (a restart, a failover), or the key's
request rate is used up for a moment (429)."""
DEFAULT_RETRIES = 6
"""Retries of a request by default: with the default backoff at least 15.75 s of waiting in all (more when
the answers say `Retry-After`), so an API restart of 15 s is ridden out."""

Neurons = Sequence[int] | range | NeuronRange | Mapping[str, int] | Literal["all"]
"""Neurons to explain in each layer: indices, a `range` (step 1 becomes a `{start, stop}` range), a
NeuronRange, or `"all"` (every neuron of the layer)."""
Layers = int | Sequence[int] | Literal["all"]
"""Layers to explain: one index, several (one request, one scan pass for all), or `"all"`."""
ProgressFn = Callable[[JobStatus], None]
"""Called with each job status while waiting."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a request after a 429, 502, 503 or 504 or a connection error (bounded): exponential
    backoff with jitter, never shorter than the answer's `Retry-After`."""

    retries: int = DEFAULT_RETRIES
    """Retries after the first attempt (0: none)."""
    backoff_s: float = 0.5
    """Base of the backoff, seconds: retry n (0-based) waits between half and all of backoff_s × 2ⁿ
    (jitter, so clients that failed together do not retry together), or `Retry-After` when longer."""
    max_wait_s: float = 30.0
    """Longest single wait, seconds: a longer backoff or 503 `Retry-After` is cut to it; a 429 whose
    `Retry-After` is longer is not retried (the key's window or quota resets later than is worth waiting)."""
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    """Source of jitter in [0, 1) (tests pass a fixed one)."""

    def delay(self, attempt: int, response: httpx.Response | None, error: Exception | None) -> float | None:
        """Seconds to wait before retrying after ``attempt`` (0-based), or None when not to retry."""
        if attempt >= self.retries:
            return None
        if response is not None and response.status_code not in RETRY_STATUSES:
            return None
        if response is None and not isinstance(error, httpx.TransportError):
            return None
        after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        if response is not None and response.status_code == 429 and (after or 0) > self.max_wait_s:
            return None
        backoff = self.backoff_s * 2**attempt
        wait = min(max(after or 0.0, backoff * (0.5 + 0.5 * self.rng())), self.max_wait_s)
        reason = f"HTTP {response.status_code}" if response is not None else f"{type(error).__name__}"
        log.warning("%s; retry %d of %d in %.1fs", reason, attempt + 1, self.retries, wait)
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def base_url(url: str | None) -> str:
    return (url or os.environ.get("NEURONLENS_API_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """`Authorization: Bearer` from ``api_key``, else from $NEURONLENS_API_KEY; none when neither is set."""
    key = api_key if api_key is not None else os.environ.get("NEURONLENS_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def build_request(
    model: str,
    layer: Layers | None,
    neurons: Neurons | None,
    options: PipelineOptions | Mapping[str, Any] | None = None,
    **fields: Any,
) -> ExplanationRequest:
    """An `ExplanationRequest`, validated here (bad input raises `RequestRejected` naming the field).
    ``layer`` is one layer, a list of layers or `"all"` (sent as `layers`); None when ``fields`` name
    `layers` themselves."""
    body: dict[str, Any] = {"model": model, "neurons": neuron_choice(neurons)}
    if isinstance(layer, int) or layer is None:
        body["layer"] = layer
    else:
        body["layers"] = layer if isinstance(layer, str) else list(layer)
    body.update({name: value for name, value in fields.items() if value is not None})
    body = {name: value for name, value in body.items() if value is not None}
    if options is not None:
        body["options"] = options.model_dump() if isinstance(options, PipelineOptions) else dict(options)
    try:
        return ExplanationRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


def jobs_params(
    status: str | None,
    model: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    page_size: int,
) -> dict[str, str]:
    """The query of `GET /v1/jobs` for these filters (instants as ISO 8601; a naive datetime is UTC)."""
    params = {"limit": str(page_size)}
    filters = {
        "status": status,
        "model": model,
        "created_after": created_after,
        "created_before": created_before,
    }
    for name, value in filters.items():
        if isinstance(value, datetime):
            params[name] = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        elif value is not None:
            params[name] = str(value)
    return params


def neuron_choice(neurons: Neurons | None) -> Any:
    """``neurons`` as a request body names them: a `range` of step 1 as `{start, stop}`, any other
    sequence as a list, `"all"` and mappings as they are."""
    if isinstance(neurons, range):
        return {"start": neurons.start, "stop": neurons.stop} if neurons.step == 1 else list(neurons)
    if isinstance(neurons, NeuronRange):
        return neurons.model_dump()
    if neurons is not None and not isinstance(neurons, (Mapping, str)):
        return list(neurons)
    return neurons


def request_body(request: ExplanationRequest) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


def check(response: httpx.Response, url: str) -> httpx.Response:
    """The response when it is a success; the matching `ClientError` otherwise."""
    if 400 <= response.status_code < 500:
        raise rejected(response)
    if response.status_code >= 500:
        from neuronlens.errors import describe_problem

        raise ApiUnavailable(f"the API at {url} failed: {describe_problem(response)}")
    return response


def unreachable(url: str, error: Exception) -> ApiUnavailable:
    return ApiUnavailable(
        f"cannot reach the NeuronLens API at {url} ({type(error).__name__}: {error}); "
        "start it with `neuronlens up`, or pass another URL"
    )


def parse_submission(response: httpx.Response) -> ExplanationAccepted | JobStatus:
    """202: the job to follow; 200: a finished status carrying the first page of its reports."""
    if response.status_code == 200:
        return JobStatus.model_validate_json(response.content)
    return ExplanationAccepted.model_validate_json(response.content)


def finished_or_raise(status: JobStatus) -> bool:
    """True once finished; raises `JobFailed` for a failed or cancelled job."""
    if status.status in ("failed", "cancelled"):
        raise JobFailed(status.job_id, status.error)
    return status.status == "finished"


def dictionary_path(model: str, dictionary: str) -> str:
    return f"/v1/models/{quote(model, safe='')}/dictionaries/{quote(dictionary, safe='')}"


def report_path(model: str, layer: int, neuron: int) -> str:
    return f"/v1/neurons/{quote(model, safe='')}/{layer}/{neuron}"


ExportFormat = Literal["ndjson", "csv", "parquet"]
"""Table formats of `Client.export` and `Client.export_layer`."""
ExportFields = Literal["summary", "full"]
"""`summary`: one row per neuron (type, evidence, explanation, score, CI, …); `full`: whole reports too."""


def export_request(
    path: str, export_format: str, fields: str, query: Mapping[str, object] | None = None
) -> tuple[str, dict[str, str]]:
    """(path, query parameters) of a table export."""
    return path, {**report_params(**(query or {})), "format": export_format, "fields": fields}


def exported(response: httpx.Response, output: str | os.PathLike[str] | None) -> bytes:
    """The export's bytes (httpx has undone any gzip), written to ``output`` too when given."""
    if output is not None:
        with open(output, "wb") as handle:
            handle.write(response.content)
    return response.content


def export_not_finished(error: RequestRejected, job_id: str) -> ClientError:
    """A 409 from a job export as `JobNotFinished`; any other rejection as it is."""
    if error.status_code == 409:
        return JobNotFinished(f"job {job_id} is not finished: {error}")
    return error


def layer_path(model: str, layer: int) -> str:
    return f"/v1/neurons/{quote(model, safe='')}/{layer}"


def report_params(**query: object) -> dict[str, str]:
    return {name: str(value) for name, value in query.items() if value is not None}


HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)


class ClientBase(Generic[HttpT]):
    """What `Client` and `AsyncClient` share: the base URL, retry policy, polling interval and the httpx
    client (of the subclass's `http_class`), and the decision after each attempt of a request."""

    http_class: type[HttpT]

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = 0.5,
        max_retry_wait_s: float = 30.0,
        poll_interval_s: float = 0.5,
    ):
        self.url = base_url(url)
        self.retry = RetryPolicy(retries=retries, backoff_s=backoff_s, max_wait_s=max_retry_wait_s)
        self.poll_interval_s = poll_interval_s
        headers = auth_headers(api_key)
        self._http: HttpT = self.http_class(base_url=self.url, timeout=timeout_s, headers=headers)

    def _settle(
        self, attempt: int, response: httpx.Response | None, error: httpx.TransportError | None
    ) -> httpx.Response | float:
        """After ``attempt`` (0-based) got ``response`` or ``error``: seconds to wait before retrying, or
        the checked answer; raises `ApiUnavailable` (or the answer's error) when no retry is left."""
        delay = self.retry.delay(attempt, response, error)
        if delay is not None:
            return delay
        if response is None:
            assert error is not None
            raise unreachable(self.url, error) from error
        return check(response, self.url)


def finished_page(status: JobStatus, job_id: str) -> list[NeuronReport]:
    """The reports of one page of a finished job; `JobNotFinished` while it runs, `JobFailed` if failed."""
    if not finished_or_raise(status):
        raise JobNotFinished(f"job {job_id} is {status.status}; wait for it before reading reports")
    return list(status.reports or [])


class Poll:
    """One wait for job ``job_id``: `done` checks each polled status (idle-queue warning, ``progress``,
    failure, the ``timeout_s`` deadline); ``status_url``, when given, is named in the timeout error.
    ``finished`` decides (and raises for a failure); ``what`` names the thing waited for (`job`,
    `comparison`)."""

    def __init__(
        self,
        job_id: str,
        progress: Callable[[Any], None] | None,
        timeout_s: float | None,
        status_url: str | None,
        finished: Callable[[Any], bool] = finished_or_raise,
        what: str = "job",
    ) -> None:
        self.job_id, self.progress, self.timeout_s, self.status_url = job_id, progress, timeout_s, status_url
        self.finished, self.what = finished, what
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.idle = IdleQueueWarning()

    def done(self, status: Any) -> bool:
        """True once finished; raises `JobFailed` or `WaitTimeout`; False: poll again."""
        self.idle(status)
        if self.progress is not None:
            self.progress(status)
        if self.finished(status):
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            message = f"{self.what} {self.job_id} is still {status.status} after {self.timeout_s:g}s"
            if self.status_url is not None:
                message += f"; stopped waiting (it goes on in the service: GET {self.status_url})"
            raise WaitTimeout(message)
        return False


class IdleQueueWarning:
    """Logs once per job when no worker listens on the queue the job waits in (`JobStatus.workers` = 0)."""

    def __init__(self) -> None:
        self.warned = False

    def __call__(self, status: Any) -> None:
        if status.status == "queued" and getattr(status, "workers", None) == 0 and not self.warned:
            self.warned = True
            log.warning(NO_WORKER_HINT.format(job_id=status.job_id))


NO_WORKER_HINT = (
    "job {job_id} is queued but no worker listens on its queue: start one (`neuronlens up` starts "
    "workers; `neuronlens-worker --queues scan,explain` runs one beside an API)"
)
