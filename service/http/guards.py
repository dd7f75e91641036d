"""Checks every request passes before its handler parses anything: content type, JSON nesting depth,
members repeated within a JSON object, and query parameter names (unknown or repeated ones). Each failure
is a problem-details 4xx (service/http/error_responses.py), so no input reaches a 5xx or costs more than a
parse of its bytes.

The body size itself is bounded by Litestar (``request_max_body_size``: 413 beyond it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from litestar import Litestar, Request

from service.problems import ApiError, FieldProblem, InvalidInput

MAX_BODY_BYTES = 1_048_576
"""Largest request body, bytes (a request naming 65,536 neurons fits in under half of it)."""

MAX_HEADER_BYTES = 32_768
"""Largest header block (names and values) the API reads, bytes; beyond it a 431. (Blocks too large for
uvicorn's own buffer are refused by uvicorn before the app sees them.)"""

MAX_JSON_DEPTH = 16
"""Deepest nesting of JSON arrays and objects a body may have (a valid request has 3)."""

JSON_MEDIA_TYPES = ("application/json",)
"""Content types a body may have (``application/*+json`` is accepted too)."""


class UnsupportedMediaType(ApiError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class HeadersTooLarge(ApiError):
    status_code = 431
    slug = "headers-too-large"
    title = "Request header fields too large"


class MalformedRequest(ApiError):
    status_code = 400
    slug = "malformed-request"
    title = "Malformed request"


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``limit`` (brackets inside strings do not
    count). Linear in the body; usually just two ``bytes.count`` calls."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b'""', body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENERS else -1
        if depth > limit:
            return True
    return False


_OPENERS = frozenset(b"[{")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def query_parameter_names(app: Litestar) -> dict[str, frozenset[str]]:
    """Query parameter names per operation id, from the app's OpenAPI document (the one source of truth
    for what a route takes, dependencies included)."""
    names: dict[str, frozenset[str]] = {}
    for path_item in (app.openapi_schema.paths or {}).values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is None or operation.operation_id is None:
                continue
            names[operation.operation_id] = frozenset(
                p.name for p in operation.parameters or [] if getattr(p, "param_in", None) == "query"
            )
    return names


def _check_query(request: Request[Any, Any, Any]) -> None:
    allowed_by_operation: dict[str, frozenset[str]] | None = request.app.state.get("query_names")
    if allowed_by_operation is None:
        allowed_by_operation = query_parameter_names(request.app)
        request.app.state.query_names = allowed_by_operation
    operation_id = request.route_handler.operation_id
    allowed = allowed_by_operation.get(operation_id if isinstance(operation_id, str) else "", frozenset())
    repeated = sorted(
        name for name in set(request.query_params) if len(request.query_params.getall(name)) > 1
    )
    if repeated:
        raise InvalidInput(
            f"repeated query parameters: {', '.join(repeated)}",
            [FieldProblem(field=name, message="given more than once; send it once") for name in repeated],
        )
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput(
            f"unknown query parameters: {', '.join(unknown)}",
            [
                FieldProblem(field=name, message=f"unknown query parameter; this route accepts: {accepted}")
                for name in unknown
            ],
        )


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Litestar ``before_request`` hook: unknown or repeated query parameters → 422; a body that is not
    JSON → 415; JSON nested deeper than :data:`MAX_JSON_DEPTH` → 400; a repeated JSON member → 422;
    headers past :data:`MAX_HEADER_BYTES` → 431.
    Returns None so the handler runs."""
    header_bytes = sum(len(name) + len(value) for name, value in request.scope["headers"])
    if header_bytes > MAX_HEADER_BYTES:
        raise HeadersTooLarge(
            f"the request headers take {header_bytes} bytes: at most {MAX_HEADER_BYTES} are read"
        )
    _check_query(request)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    content_type = request.headers.get("content-type", "")
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"the body must be JSON: send Content-Type: application/json (got {content_type or 'none'!r})"
        )
    body = await request.body()  # Litestar caches it for the handler's own parsing
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        raise MalformedRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    duplicate = duplicate_json_key(body)
    if duplicate is not None:
        raise InvalidInput.for_field(
            duplicate, "given more than once in one JSON object; send each member once"
        )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def duplicate_json_key(body: bytes) -> str | None:
    """The first member name repeated within one JSON object of ``body`` (RFC 8259 leaves its meaning
    undefined; parsers keep the last), None when there is none or the body is not JSON (the handler's
    parsing answers that)."""
    if body.count(b'"') < 4:
        return None
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as duplicate:
        return duplicate.key
    except ValueError:
        return None
    return None
