"""Every error the API answers is an RFC 9457 problem details document (`application/problem+json`).

Domain code raises the small exceptions of service/problems.py; :data:`EXCEPTION_HANDLERS` here is the one
mapping from exceptions (ours, Litestar's own, Redis outages, anything unexpected) to problem responses.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import redis
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from service.contract import Backend, CallEstimate
from service.http.request_id import current_request_id
from service.problems import ApiError, FieldProblem, InvalidInput, NotFound, Problem, RedisUnavailable

log = logging.getLogger("neuronlens.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:neuronlens:problem:"

RETRY_AFTER_S = 5
"""Seconds a 503 answer asks the client to wait (its `Retry-After` header) before trying again: a Redis
restart or failover takes a few seconds, and clients (the SDK) back off further on repeats."""


# --------------------------------------------------------------------------- responses


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    detail: str,
    title: str | None = None,
    type_: str = "about:blank",
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
    estimate: CallEstimate | None = None,
) -> Response[dict[str, Any]]:
    body = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
        request_id=current_request_id(),
        estimate=estimate,
    ).model_dump(mode="json", exclude_none=True)
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_specs(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI `responses=` entries documenting problem answers for the given status codes."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=HTTPStatus(status).phrase + " (problem details)",
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


# --------------------------------------------------------------------------- Litestar validation errors

# Pydantic names union branches in error locations ("neurons.list[constrained-int]",
# "neurons.function-after[_ordered(), NeuronRange]"); users should only see the field path.
_BRANCH = re.compile(r"^[\w-]+\[.*\]$")
_TYPE_MISMATCH = (
    "Input should be a valid list",
    "Input should be a valid dictionary or instance of",
    "Input should be 'all'",
)


_UNION_SHAPES = {
    "neurons": 'must be a list of integers, a {start, stop} object or "all"',
    "layers": 'must be a list of integers or "all"',
}
"""What a union field of the request must look like, for a value that fits none of its shapes."""


def _field_path(key: str) -> str:
    parts = [part for part in key.split(".") if part and not _BRANCH.match(part)]
    return ".".join(parts) or "body"


ENUM_CHOICES: dict[str, tuple[str, ...]] = {
    "explainer": tuple(backend.value for backend in Backend),
    "simulator": tuple(backend.value for backend in Backend),
}
"""Allowed values of the enum query parameters, named in their error messages (the parser does not)."""


def _clean_message(message: str, field: str = "") -> str:
    if message.startswith("Invalid enum value") and field in ENUM_CHOICES:
        return f"{message}: choose one of {', '.join(map(repr, ENUM_CHOICES[field]))}"
    return message.removeprefix("Value error, ")


def field_problems(extra: object) -> list[FieldProblem]:
    """Litestar's validation `extra` (a list of {message, key, source}) as field problems.

    For a union field (neurons: list or range) pydantic reports one error per branch; when one branch
    has a real complaint the "wrong type for the other branch" noise is dropped.
    """
    raw = extra if isinstance(extra, list) else []
    grouped: dict[str, list[str]] = {}
    for item in raw:
        if not isinstance(item, dict):
            continue
        field = _field_path(str(item.get("key") or ""))
        grouped.setdefault(field, []).append(_clean_message(str(item.get("message", "invalid value")), field))
    problems: list[FieldProblem] = []
    for field, messages in grouped.items():
        real = [m for m in messages if not m.startswith(_TYPE_MISMATCH)]
        if real:
            problems.extend(FieldProblem(field=field, message=m) for m in dict.fromkeys(real))
        elif len(messages) > 1:
            problems.append(FieldProblem(field=field, message=_UNION_SHAPES.get(field, "has the wrong type")))
        else:
            problems.append(FieldProblem(field=field, message=messages[0]))
    return problems


# --------------------------------------------------------------------------- handlers


def _listing(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.message}" for p in problems) or "invalid path"


def handle_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return problem_response(
        request,
        status=exc.status_code,
        title=exc.title,
        type_=PROBLEM_TYPE_PREFIX + exc.slug,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        estimate=exc.estimate,
    )


def _path_failed(extra: object) -> bool:
    return isinstance(extra, list) and any(isinstance(i, dict) and i.get("source") == "path" for i in extra)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    problems = field_problems(exc.extra)
    if _path_failed(exc.extra):
        # A path segment of the wrong form (a malformed job id, a non-integer layer) names nothing here.
        return handle_api_error(
            request, NotFound(f"{request.url.path} names no resource: {_listing(problems)}")
        )
    # Litestar reports a missing body as a validation error on its internal parameter name `data`.
    if [p.field for p in problems] == ["data"]:
        return problem_response(
            request,
            status=400,
            title="Malformed request",
            type_=PROBLEM_TYPE_PREFIX + "malformed-request",
            detail="the request body is missing: send a JSON object",
        )
    fields = ", ".join(dict.fromkeys(p.field for p in problems)) or "body"
    return problem_response(
        request,
        status=422,
        title=InvalidInput.title,
        type_=PROBLEM_TYPE_PREFIX + InvalidInput.slug,
        detail=f"invalid fields: {fields}",
        errors=problems or [FieldProblem(field="body", message=str(exc.detail))],
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    detail = str(exc.detail)
    if status == 404 and detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        return problem_response(
            request,
            status=400,
            title="Malformed request",
            type_=PROBLEM_TYPE_PREFIX + "malformed-request",
            detail=f"the request body is not valid JSON ({detail.removeprefix('JSON is malformed: ')})",
        )
    return problem_response(request, status=status, detail=detail, headers=exc.headers)


def handle_redis_down(request: Request[Any, Any, Any], exc: redis.RedisError) -> Response[dict[str, Any]]:
    log.warning("redis unreachable during %s %s: %s", request.method, request.url.path, exc)
    return handle_api_error(request, RedisUnavailable("Redis is unreachable; retry later"))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        type_=PROBLEM_TYPE_PREFIX + "internal-error",
        detail=f"the server failed to handle this request; the server log has the details under {error_id}",
    )


ExceptionHandler = Callable[[Request[Any, Any, Any], Any], Response[Any]]

EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    ApiError: handle_api_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    redis.ConnectionError: handle_redis_down,
    redis.TimeoutError: handle_redis_down,
    Exception: handle_unexpected,
}
"""The one mapping from exceptions to problem responses (most specific class wins)."""
