"""API keys, stored hashed in Redis: create, list, revoke (the `neuronlens keys` CLI) and look up (the API).

A key is ``nl_`` + 43 URL-safe characters (256 random bits); only its SHA-256 is stored, as the Redis hash
``RedisKeys.api_key(<sha256 hex>)`` with the key's name, scopes and limits. A fast hash is enough for
a key this random (no dictionary to try); the key itself is shown once, when it is made. The key id (the
first 12 hex digits of the hash) names a key in listings and logs without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Literal, cast

import redis
import redis.asyncio
from pydantic import BaseModel, Field

from service.contract import RedisKeys

Scope = Literal["read", "submit", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "submit", "admin")
KEY_PREFIX = "nl_"
KEY_ID_LENGTH = 12
"""Hex digits of the key's SHA-256 that identify it in listings, logs and `keys revoke`."""


class ApiKey(BaseModel):
    """One stored key (never the key itself)."""

    key_id: str = Field(description="First 12 hex digits of the key's SHA-256.")
    name: str = Field(description="Who the key is for, unique among active keys.")
    scopes: list[Scope] = Field(description="read: GET reports, jobs, models; submit: POST jobs; admin.")
    rate_per_minute: int | None = Field(description="Requests per minute; None: the deployment default.")
    llm_calls_per_day: int | None = Field(description="Estimated LLM calls per day; None: the default.")
    scan_passes_per_day: int | None = Field(description="Scan passes per day; None: the default.")
    created_at: float = Field(description="Unix time the key was made.")
    revoked_at: float | None = Field(default=None, description="Unix time it was revoked; None: active.")

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a key is stored under."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[Scope]:
    """``"read,submit"`` → ``["read", "submit"]``; ValueError naming the allowed scopes otherwise."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SCOPES]
    if unknown or not names:
        raise ValueError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}; got {text!r}")
    return [scope for scope in SCOPES if scope in names]


def _fields(record: ApiKey) -> dict[str, str]:
    data = record.model_dump(exclude_none=True)
    data["scopes"] = ",".join(record.scopes)
    return {name: str(value) for name, value in data.items()}


def _record(raw: Mapping[bytes, bytes]) -> ApiKey | None:
    if not raw:
        return None
    data: dict[str, object] = {k.decode(): v.decode() for k, v in raw.items()}
    data["scopes"] = [s for s in str(data.get("scopes", "")).split(",") if s]
    for name in ("rate_per_minute", "llm_calls_per_day", "scan_passes_per_day", "revoked_at"):
        data.setdefault(name, None)
    return ApiKey.model_validate(data)


class KeyStore:
    """Keys in one Redis database, under the deployment's key names (``NEURONLENS_REDIS_PREFIX``)."""

    def __init__(self, keys: RedisKeys | None = None) -> None:
        self.keys = keys or RedisKeys()
        self.index_key = self.keys.api_key_index
        """Set of the SHA-256 digests of every key made (revoked ones too), for listing."""

    def _key(self, digest: str) -> str:
        return self.keys.api_key(digest)

    def create(
        self,
        connection: redis.Redis,
        name: str,
        scopes: list[Scope],
        rate_per_minute: int | None = None,
        llm_calls_per_day: int | None = None,
        scan_passes_per_day: int | None = None,
    ) -> tuple[str, ApiKey]:
        """Make a key; returns (the key, shown only now; its stored record). ValueError for a taken name."""
        if any(record.name == name and record.active for record in self.all(connection)):
            raise ValueError(f"an active key named {name!r} exists: revoke it first or choose another name")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        record = ApiKey(
            key_id=digest[:KEY_ID_LENGTH],
            name=name,
            scopes=scopes,
            rate_per_minute=rate_per_minute,
            llm_calls_per_day=llm_calls_per_day,
            scan_passes_per_day=scan_passes_per_day,
            created_at=time.time(),
        )
        with connection.pipeline() as pipe:
            pipe.hset(self._key(digest), mapping=_fields(record))  # type: ignore[arg-type]
            pipe.sadd(self.index_key, digest)
            pipe.execute()
        return key, record

    def all(self, connection: redis.Redis) -> list[ApiKey]:
        """Every key made, revoked ones included, oldest first."""
        digests = sorted(d.decode() for d in cast(set[bytes], connection.smembers(self.index_key)))
        with connection.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.hgetall(self._key(digest))
            raws = pipe.execute()
        records = [record for raw in raws if (record := _record(raw)) is not None]
        return sorted(records, key=lambda record: record.created_at)

    def revoke(self, connection: redis.Redis, name_or_id: str) -> list[ApiKey]:
        """Revoke the active keys with this name or key id; returns them (empty when none matched)."""
        revoked = []
        now = time.time()
        for digest in sorted(d.decode() for d in cast(set[bytes], connection.smembers(self.index_key))):
            record = _record(cast(Mapping[bytes, bytes], connection.hgetall(self._key(digest))))
            if record is None or not record.active or name_or_id not in (record.name, record.key_id):
                continue
            connection.hset(self._key(digest), "revoked_at", str(now))
            revoked.append(record.model_copy(update={"revoked_at": now}))
        return revoked

    async def lookup(self, connection: redis.asyncio.Redis, key: str) -> ApiKey | None:
        """The active record of a presented key; None when unknown or revoked (one Redis round trip)."""
        raw = await connection.hgetall(self._key(hash_key(key)))
        record = _record(cast(Mapping[bytes, bytes], raw))
        return record if record is not None and record.active else None
