"""What `Client` and `AsyncClient` share, without I/O: request bodies, answer parsing, retry decisions."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from neuronlens._contract import (
    ExplanationAccepted,
    ExplanationRequest,
    JobStatus,
    NeuronRange,
    PipelineOptions,
)
from neuronlens.errors import ApiUnavailable, JobFailed, invalid_request, rejected

log = logging.getLogger("neuronlens.client")

DEFAULT_URL = "http://127.0.0.1:8000"
REPORTS_PAGE = 100
"""Reports fetched per `GET /v1/jobs/{id}` page."""
RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers retried: the API or its Redis is briefly unavailable (a restart, a failover)."""

Neurons = Sequence[int] | range | NeuronRange | Mapping[str, int]
"""Neurons to explain: indices, a `range` (step 1 becomes a `{start, stop}` range), or a NeuronRange."""
ProgressFn = Callable[[JobStatus], None]
"""Called with each job status while waiting."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a request after a 502/503/504 or a connection error (bounded)."""

    retries: int = 4
    """Retries after the first attempt (0: none)."""
    backoff_s: float = 0.5
    """First wait, seconds; doubles per retry unless the answer says `Retry-After`."""
    max_wait_s: float = 30.0
    """Longest single wait, seconds (a longer `Retry-After` is cut to this)."""

    def delay(self, attempt: int, response: httpx.Response | None, error: Exception | None) -> float | None:
        """Seconds to wait before retrying after ``attempt`` (0-based), or None when not to retry."""
        if attempt >= self.retries:
            return None
        if response is not None and response.status_code not in RETRY_STATUSES:
            return None
        if response is None and not isinstance(error, httpx.TransportError):
            return None
        after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        wait = after if after is not None else self.backoff_s * 2**attempt
        reason = f"HTTP {response.status_code}" if response is not None else f"{type(error).__name__}"
        log.warning("%s; retry %d of %d in %.1fs", reason, attempt + 1, self.retries, wait)
        return min(wait, self.max_wait_s)


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
    layer: int,
    neurons: Neurons,
    options: PipelineOptions | Mapping[str, Any] | None = None,
    **fields: Any,
) -> ExplanationRequest:
    """An `ExplanationRequest`, validated here (bad input raises `RequestRejected` naming the field)."""
    chosen: Any = neurons
    if isinstance(neurons, range):
        chosen = {"start": neurons.start, "stop": neurons.stop} if neurons.step == 1 else list(neurons)
    elif isinstance(neurons, NeuronRange):
        chosen = neurons.model_dump()
    elif not isinstance(neurons, Mapping):
        chosen = list(neurons)
    body: dict[str, Any] = {"model": model, "layer": layer, "neurons": chosen}
    body.update({name: value for name, value in fields.items() if value is not None})
    if options is not None:
        body["options"] = options.model_dump() if isinstance(options, PipelineOptions) else dict(options)
    try:
        return ExplanationRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


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
    """202: the job to follow; 200: a finished status carrying every report."""
    if response.status_code == 200:
        return JobStatus.model_validate_json(response.content)
    return ExplanationAccepted.model_validate_json(response.content)


def finished_or_raise(status: JobStatus) -> bool:
    """True once finished; raises `JobFailed` for a failed job."""
    if status.status == "failed":
        raise JobFailed(status.job_id, status.error)
    return status.status == "finished"


def report_path(model: str, layer: int, neuron: int) -> str:
    return f"/v1/neurons/{quote(model, safe='')}/{layer}/{neuron}"


def report_params(**query: object) -> dict[str, str]:
    return {name: str(value) for name, value in query.items() if value is not None}


class IdleQueueWarning:
    """Logs once per job when no worker listens on the queue the job waits in (`JobStatus.workers` = 0)."""

    def __init__(self) -> None:
        self.warned = False

    def __call__(self, status: JobStatus) -> None:
        if status.status == "queued" and getattr(status, "workers", None) == 0 and not self.warned:
            self.warned = True
            log.warning(NO_WORKER_HINT.format(job_id=status.job_id))


NO_WORKER_HINT = (
    "job {job_id} is queued but no worker listens on its queue: start one (`neuronlens up` starts "
    "workers; `neuronlens-worker --queues scan,explain` runs one beside an API)"
)
