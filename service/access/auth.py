"""API keys on the /v1 routes (`NEURONLENS_AUTH=keys`): who is calling, with which scopes, how often.

:func:`api_router` mounts the /v1 handlers under one Router. With keys on, its middleware reads the key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`), looks it up in Redis (service/access/api_keys.py, so a
revocation holds on every replica at once) and counts the request against the key's per-minute rate
(service/access/ratelimit.py); its guard checks the scope the route needs (GET/HEAD: `read`, POST: `submit`,
or the handler's ``opt["scope"]``). Health, readiness, metrics and the OpenAPI document stay outside.
The security schemes are declared in OpenAPI either way (they are enforced only with keys on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.types import BeforeRequestHookHandler, ControllerRouterHandler

from service.access.api_keys import ApiKey, KeyStore, Scope
from service.problems import Forbidden, Unauthorized
from service.settings import Settings

BEARER_SCHEME = "bearerKey"
HEADER_SCHEME = "apiKeyHeader"
API_KEY_HEADER = "X-API-Key"
SECURITY: list[SecurityRequirement] = [{BEARER_SCHEME: []}, {HEADER_SCHEME: []}]
"""Either scheme will do: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
SECURITY_COMPONENTS = Components(
    security_schemes={
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            description="An API key from `neuronlens keys create`, as `Authorization: Bearer <key>` "
            "(enforced when the deployment sets `NEURONLENS_AUTH=keys`).",
        ),
        HEADER_SCHEME: SecurityScheme(
            type="apiKey",
            name=API_KEY_HEADER,
            security_scheme_in="header",
            description="The same key in the `X-API-Key` header.",
        ),
    }
)


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`, or None when neither header is sent."""
    authorization = connection.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = connection.headers.get(API_KEY_HEADER)
    return key.strip() if key and key.strip() else None


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates the key and counts the request against its rate (RateLimited when used up)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = presented_key(connection)
        if key is None:
            raise Unauthorized(
                f"an API key is required: send `Authorization: Bearer <key>` or `{API_KEY_HEADER}: <key>`"
            )
        state = connection.app.state
        record = await state.key_store.lookup(state.redis_async, key)
        if record is None:
            raise Unauthorized("the API key is unknown or revoked")
        await state.rate_limits.check_request(record)
        return AuthenticationResult(user=record, auth=record.key_id)


def required_scope(handler: BaseRouteHandler, method: str) -> Scope:
    """The scope a route needs: the handler's ``opt["scope"]``, else `read` for GET/HEAD, else `submit`."""
    scope = handler.opt.get("scope")
    if scope is not None:
        return scope  # type: ignore[no-any-return]
    return "read" if method in ("GET", "HEAD") else "submit"


def require_scope(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: Forbidden when the authenticated key lacks the route's scope."""
    key = connection.scope.get("user")
    if not isinstance(key, ApiKey):  # the middleware runs first; this only guards against misuse
        raise Unauthorized("an API key is required")
    method = str(connection.scope.get("method", "GET"))
    needed = required_scope(handler, method)
    if needed not in key.scopes:
        raise Forbidden(
            f"key {key.name!r} has scopes {', '.join(key.scopes)}; "
            f"{method} {connection.url.path} needs `{needed}`"
        )


def calling_key(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey | None:
    """The authenticated key of a request (None with auth off)."""
    key = connection.scope.get("user")
    return key if isinstance(key, ApiKey) else None


def api_router(
    handlers: Sequence[ControllerRouterHandler], settings: Settings, before_request: BeforeRequestHookHandler
) -> Router:
    """The /v1 handlers under one Router, with key authentication and scope checks when keys are on."""
    keys_on = settings.auth == "keys"
    return Router(
        path="/",
        route_handlers=list(handlers),
        before_request=before_request,
        security=SECURITY,
        middleware=[DefineMiddleware(ApiKeyMiddleware)] if keys_on else [],
        guards=[require_scope] if keys_on else [],
    )


def key_store(settings: Settings) -> KeyStore:
    return KeyStore(settings.redis_keys)
