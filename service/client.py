"""A small HTTP client for `neuronlens explain`: submit a request, follow the job, collect the reports.

Talks to the API only over HTTP (httpx); errors come back as :class:`ClientError` subclasses whose
message is ready to print: the API's problem details for a rejected request, the job's error for a
failed job, and what to do when the API is not reachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

REPORTS_PAGE = 100
"""Reports fetched per GET /v1/jobs/{id} page."""

ProgressFn = Callable[[dict[str, Any]], None]
"""Called with each job status document while polling."""


class ClientError(Exception):
    """Something the user should read; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class RequestRejected(ClientError):
    """The API answered 4xx: the request itself is wrong (the message names the field)."""

    exit_code = 2


class JobFailed(ClientError):
    """The job ran and failed."""


class ApiUnavailable(ClientError):
    """No answer from the API, or an answer that is not the NeuronLens API."""


def describe_problem(response: httpx.Response) -> str:
    """One readable paragraph from an RFC 9457 problem response (or whatever body came back)."""
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text.strip()[:500] or response.reason_phrase}"
    if not isinstance(problem, dict):
        return f"HTTP {response.status_code}: {problem}"
    title = problem.get("title") or response.reason_phrase
    detail = str(problem.get("detail") or "")
    lines = [f"{title} (HTTP {response.status_code})" + (f": {detail}" if detail else "")]
    for error in problem.get("errors") or []:
        if not isinstance(error, dict):
            continue
        line = f"{error.get('field') or 'request'}: {error.get('message', '')}"
        if line not in detail:  # the detail often repeats the only field error already
            lines.append("  " + line)
    return "\n".join(lines)


class NeuronLensClient:
    """Client of one API base URL (``http://127.0.0.1:8000``)."""

    def __init__(self, base_url: str, timeout_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NeuronLensClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnavailable(
                f"cannot reach the NeuronLens API at {self.base_url} ({exc.__class__.__name__}: {exc}); "
                "start it with `neuronlens up`, or pass --url"
            ) from exc
        if 400 <= response.status_code < 500:
            raise RequestRejected(describe_problem(response))
        if response.status_code >= 500:
            raise ApiUnavailable(f"the API failed: {describe_problem(response)}")
        return response

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/explanations; the 202 acceptance or the 200 answer with every report."""
        response = self._request("POST", "/v1/explanations", json=body)
        answer: dict[str, Any] = response.json()
        return answer

    def job(self, job_id: str, offset: int = 0, limit: int = REPORTS_PAGE) -> dict[str, Any]:
        status: dict[str, Any] = self._request(
            "GET", f"/v1/jobs/{job_id}", params={"offset": offset, "limit": limit}
        ).json()
        return status

    def wait(
        self,
        job_id: str,
        progress: ProgressFn | None = None,
        poll_interval_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Poll the job until it finishes (its status document) or fails (:class:`JobFailed`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.job(job_id)
            if progress is not None:
                progress(status)
            if status["status"] == "finished":
                return status
            if status["status"] == "failed":
                error = status.get("error") or {}
                kind, message = error.get("type", "Error"), error.get("message", "no reason given")
                raise JobFailed(f"job {job_id} failed: {kind}: {message}")
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(
                    f"job {job_id} is still {status['status']} after {timeout_s:.0f}s; stopped waiting "
                    f"(it goes on in the service: GET {self.base_url}/v1/jobs/{job_id})"
                )
            time.sleep(poll_interval_s)

    def reports(self, job_id: str, first_page: dict[str, Any]) -> list[dict[str, Any]]:
        """Every report of a finished job, following the pages after ``first_page``."""
        reports: list[dict[str, Any]] = list(first_page.get("reports") or [])
        total = first_page.get("reports_total")
        total = len(reports) if total is None else int(total)
        while len(reports) < total:
            page = self.job(job_id, offset=len(reports)).get("reports") or []
            if not page:
                raise ApiUnavailable(f"job {job_id} lists {total} reports but page {len(reports)} is empty")
            reports.extend(page)
        return reports

    def explain(
        self,
        body: dict[str, Any],
        progress: ProgressFn | None = None,
        timeout_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Submit ``body`` and return its reports, waiting for the job when one is needed."""
        answer = self.submit(body)
        job_id = answer.get("job_id")
        if "reports" in answer and (answer.get("status") in (None, "finished")):
            if job_id and answer.get("reports_total") is not None:
                return self.reports(str(job_id), answer)
            return list(answer["reports"])
        if not job_id:
            raise ApiUnavailable(f"unexpected answer from POST /v1/explanations: {str(answer)[:300]}")
        finished = self.wait(str(job_id), progress=progress, timeout_s=timeout_s)
        return self.reports(str(job_id), finished)
