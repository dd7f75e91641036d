"""HTTP conventions of the API: conditional GETs (strong ETag, 304), HEAD on every GET route, content
negotiation (406 instead of ignoring `Accept`), gzip and CORS settings.

Stored reports and exemplar PNGs are immutable bytes under their key until a job rewrites them, so their
ETag is a digest of the bytes: no extra Redis round trip, and a 304 saves the transfer.
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request, Response
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig

from service.http.request_id import REQUEST_ID_HEADER
from service.problems import NotAcceptable
from service.settings import Settings

COMPRESSION = CompressionConfig(backend="gzip", minimum_size=1024, gzip_compress_level=6)
"""gzip for answers of 1 KiB or more when the client sends `Accept-Encoding: gzip` (level 6: most of
level 9's ratio on JSON at a fraction of its CPU)."""
REPORT_CACHE_CONTROL = "no-cache"
"""Reports may be rewritten when a failed job is re-run: caches keep them but revalidate (a cheap 304)."""
IMAGE_CACHE_CONTROL = "max-age=86400"
"""Images never change under their key (the variant hashes everything that shapes them)."""


def cache_control(settings: Settings | None, directive: str) -> str:
    """`private` when answers depend on an API key (shared caches must not keep them), else `public`."""
    keys_on = settings is not None and settings.auth == "keys"
    return ("private, " if keys_on else "public, ") + directive


def strong_etag(content: bytes) -> str:
    """A strong entity tag for exact bytes: the quoted first 32 hex digits of their SHA-256."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an `If-None-Match` header matches ``etag`` (`*`, or one of its tags; weak comparison,
    as RFC 9110 §13.1.2 prescribes for If-None-Match)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def conditional_response(
    request: Request[Any, Any, Any], content: bytes, media_type: str, cache: str
) -> Response[bytes]:
    """200 with the bytes, or 304 without them when the client's `If-None-Match` names their ETag."""
    etag = strong_etag(content)
    headers = {"ETag": etag, "Cache-Control": cache}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(content=b"", status_code=304, headers=headers, media_type=media_type)
    return Response(content=content, media_type=media_type, headers=headers)


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) of each media range of an `Accept` header; unreadable q values count as 0."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if "/" not in media:
            continue
        main, sub = (name.strip().lower() for name in media.split("/", 1))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((main, sub, quality))
    return ranges


def _quality(media: str, ranges: list[tuple[str, str, float]]) -> float:
    """The q of ``media``: that of the most specific range matching it (RFC 9110 §12.5.1); 0 when none."""
    main, sub = media.split(";")[0].strip().lower().split("/", 1)
    best, specificity = 0.0, -1
    for range_main, range_sub, quality in ranges:
        level = (
            2
            if (range_main, range_sub) == (main, sub)
            else 1
            if (range_main, range_sub) == (main, "*")
            else 0
        )
        if level == 0 and (range_main, range_sub) != ("*", "*"):
            continue
        if level > specificity:
            best, specificity = quality, level
    return best


def negotiate(accept: str | None, offered: list[str]) -> str | None:
    """The media type of ``offered`` that ``accept`` prefers (the highest q; ties go to the earlier one, so
    the first is the default), None when `Accept` admits none of them (q=0 excludes a type)."""
    if not accept or not accept.strip():
        return offered[0]
    ranges = _media_ranges(accept)
    scored = [(_quality(media, ranges), -index, media) for index, media in enumerate(offered)]
    quality, _, media = max(scored)
    return media if quality > 0 else None


def offered_media(request: Request[Any, Any, Any]) -> list[str]:
    """The representations of the request's route: its media type, or the list in its
    ``opt["media_types"]`` when it has several (the table exports), the default first."""
    handler = request.route_handler
    return handler.opt.get("media_types") or [
        str(getattr(handler.media_type, "value", handler.media_type) or "application/json")
    ]


def not_acceptable(request: Request[Any, Any, Any], offered: list[str]) -> NotAcceptable:
    listed = " or ".join(offered)
    accept = request.headers.get("accept")
    return NotAcceptable(f"{request.url.path} is available as {listed} only; `Accept: {accept}` admits none")


def check_accept(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: NotAcceptable when `Accept` admits none of the route's representations
    (:func:`offered_media`)."""
    offered = offered_media(request)
    if negotiate(request.headers.get("accept"), offered) is None:
        raise not_acceptable(request, offered)


def chosen_format(request: Request[Any, Any, Any], formats: dict[str, str], default: str) -> str:
    """The `format` of a route that answers several (``formats``: format → media type): the one the
    query names, else the one `Accept` prefers (``default`` when it has no preference); NotAcceptable when
    `Accept` admits the named format (or every format) not."""
    accept = request.headers.get("accept")
    named = request.query_params.get("format")
    if named is not None:
        if negotiate(accept, [formats[named]]) is None:
            raise not_acceptable(request, [formats[named]])
        return named
    media = [formats[default], *(m for f, m in formats.items() if f != default)]
    chosen = negotiate(accept, media)
    if chosen is None:
        raise not_acceptable(request, media)
    return next(f for f, m in formats.items() if m == chosen)


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS for the configured origins (`NEURONLENS_CORS_ORIGINS`); None (no CORS headers) by default."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
        allow_headers=["Authorization", "X-API-Key", REQUEST_ID_HEADER, "Content-Type", "If-None-Match"],
        expose_headers=["ETag", "Location", "Retry-After", REQUEST_ID_HEADER],
    )


class HeadMiddleware:
    """ASGI wrapper: answers HEAD on every GET route by running the GET and dropping its body (headers,
    Content-Length included, stay as GET would send them, RFC 9110 §9.3.2)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
