"""Errors the SDK raises: each message is ready to print (the CLI prints it as is).

``exit_code`` is what the `neuronlens` command exits with for that error.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import ValidationError

from neuronlens._contract import JobError


class ClientError(Exception):
    """Something the user should read."""

    exit_code = 1


class RequestRejected(ClientError):
    """The API answered 4xx (or the request failed local validation): the message names the field."""

    exit_code = 2

    def __init__(self, message: str, status_code: int | None = None, problem: dict[str, Any] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.problem = problem or {}


class NotFound(RequestRejected):
    """404: no such job (or its record expired), or no stored report for that neuron yet."""


class JobFailed(ClientError):
    """The job ran and failed; ``error`` is the API's `JobError` (type and message)."""

    def __init__(self, job_id: str, error: JobError | None):
        self.job_id = job_id
        self.error = error
        kind, message = (error.type, error.message) if error else ("Error", "no reason given")
        super().__init__(f"job {job_id} failed: {kind}: {message}")


class JobNotFinished(ClientError):
    """Reports were asked for before the job finished."""


class WaitTimeout(ClientError):
    """The job did not finish within the caller's timeout (it goes on in the service)."""


class ApiUnavailable(ClientError):
    """No answer from the API after the retries, a 5xx, or an answer that is not the NeuronLens API."""


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


def rejected(response: httpx.Response) -> RequestRejected:
    """The error for a 4xx answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) else None
    kind = NotFound if response.status_code == 404 else RequestRejected
    return kind(describe_problem(response), status_code=response.status_code, problem=problem)


# Pydantic names union branches in error locations ("list[constrained-int]"); users see the field path.
_BRANCH = re.compile(r"^[\w-]+\[.*\]$")


def invalid_request(exc: ValidationError) -> RequestRejected:
    """A request that failed validation before it was sent, one line per field."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"] if not _BRANCH.match(str(part))) or "request"
        line = f"{field}: {str(error['msg']).removeprefix('Value error, ')}"
        if line not in lines:
            lines.append(line)
    return RequestRejected("invalid request: " + "; ".join(lines))
