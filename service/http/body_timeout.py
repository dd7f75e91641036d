"""Partial request bodies time out: a client that sends headers and then a body too slowly (or stops) gets
a 408 and its connection is closed, instead of holding a connection and a task for as long as it likes.

uvicorn times out idle keep-alive connections (`--timeout-keep-alive`) but not a request body in flight,
and Litestar has no such setting either, so this ASGI wrapper bounds the time from the request's first
`receive` to its last body chunk (`NEURONLENS_REQUEST_BODY_TIMEOUT_S`). It only wraps `receive` while the
body is incomplete: later calls (a streamed answer listening for the client's disconnect) pass through.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.problems import ApiError


class RequestTimeout(ApiError):
    status_code = 408
    slug = "request-timeout"
    title = "Request timeout"


class BodyTimeoutMiddleware:
    """ASGI wrapper: :class:`RequestTimeout` (a 408 with `Connection: close`) when a request's body is not
    complete ``timeout_s`` seconds after the app first asked for it; ``timeout_s`` None or 0: no limit."""

    def __init__(self, app: Any, timeout_s: float | None) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.timeout_s:
            await self.app(scope, receive, send)
            return
        timeout_s = self.timeout_s
        deadline: float | None = None
        complete = False

        async def timed_receive() -> Any:
            nonlocal deadline, complete
            if complete:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline if deadline is not None else loop.time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body was not complete within {timeout_s:g} s "
                    "(NEURONLENS_REQUEST_BODY_TIMEOUT_S): send it at once, or in fewer, larger parts",
                    headers={"Connection": "close"},
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
