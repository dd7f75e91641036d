"""What can go wrong with a request, as data: the problem details body (RFC 9457) and the exceptions any
layer of the API raises (a 404, a 422 naming a field, a quota refusal with its estimate). How each becomes an
HTTP response is service/http/error_responses.py's business, so request checking, access, jobs and reports
raise them without depending on the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from service.contract import CallEstimate


class FieldProblem(BaseModel):
    """One invalid input: which field, and what is wrong with it."""

    field: str = Field(description="Dotted path of the offending field, e.g. `neurons.stop` or `layer`.")
    message: str = Field(description="What is wrong and what is allowed.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URI identifying the problem type (`about:blank` for plain HTTP errors).")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence, in words.")
    instance: str = Field(description="The request path this problem occurred on.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="Invalid fields, for validation problems."
    )
    request_id: str | None = Field(
        default=None, description="The request's `X-Request-ID` (sent by the client or generated)."
    )
    estimate: CallEstimate | None = Field(
        default=None, description="For quota refusals: what the refused request was estimated to cost."
    )


class ApiError(Exception):
    """Base of the errors handlers raise; subclasses fix the status, type and title."""

    status_code: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str,
        errors: list[FieldProblem] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        estimate: CallEstimate | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.estimate = estimate


class InvalidInput(ApiError):
    """The request is well-formed JSON but names something that does not exist or is out of range."""

    status_code = 422
    slug = "invalid-request"
    title = "Invalid request"

    @classmethod
    def for_field(cls, field: str, message: str) -> InvalidInput:
        return cls(f"{field}: {message}", [FieldProblem(field=field, message=message)])


class NotFound(ApiError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class Unauthorized(ApiError):
    """No API key, or one that is unknown or revoked (`NEURONLENS_AUTH=keys`)."""

    status_code = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="neuronlens"'})


class Forbidden(ApiError):
    """A valid key without the scope the route needs, or a request larger than the key's daily quota."""

    status_code = 403
    slug = "forbidden"
    title = "Forbidden"


class RateLimited(ApiError):
    """The key used up its requests per minute or a daily quota; `Retry-After` says when to retry."""

    status_code = 429
    slug = "rate-limited"
    title = "Too many requests"


class NotAcceptable(ApiError):
    """The `Accept` header names no representation this route has."""

    status_code = 406
    slug = "not-acceptable"
    title = "Not acceptable"


class JobNotFinished(ApiError):
    """The job's reports are asked for as one table before the job finished (or after it failed)."""

    status_code = 409
    slug = "job-not-finished"
    title = "Job not finished"


class RedisUnavailable(ApiError):
    status_code = 503
    slug = "redis-unavailable"
    title = "Redis unavailable"
