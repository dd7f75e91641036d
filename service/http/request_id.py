"""The request id of the HTTP request being served: accepted from ``X-Request-ID`` or generated.

:class:`RequestIdMiddleware` (outermost ASGI wrapper) sets it for the whole request, so handlers in
threads (``sync_to_thread`` copies the context), problem details, log records and the uvicorn access
line all see the same id; it is echoed in the response's ``X-Request-ID`` header.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
"""Client ids kept as sent: printable, no spaces, at most 128 characters (anything else is replaced)."""

_current: ContextVar[str | None] = ContextVar("neuronlens_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context, or None outside a request."""
    return _current.get()


def _incoming(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY:
            text = value.decode("latin-1").strip()
            return text if _ACCEPTED.match(text) else None
    return None


class RequestIdMiddleware:
    """ASGI wrapper: take the client's ``X-Request-ID`` (when well-formed) or make one; echo it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        token = _current.set(request_id)
        header = (_HEADER_KEY, request_id.encode())

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request), for the JSON formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True
