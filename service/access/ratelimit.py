"""Per-key request rates and daily quotas, counted in Redis (PyPI `limits`) so every API replica shares them.

- Requests per minute: a moving window per key, checked by the auth middleware on every request.
- Daily quotas of estimated LLM calls and scan passes (service/estimates/estimate.py): a submission whose
  estimate does not fit the key's remaining quota is refused before anything is enqueued (429 with
  Retry-After until the window resets; 403 when the estimate exceeds the whole daily quota), and a
  submission that enqueues a job is charged its estimate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from service.access.api_keys import ApiKey
from service.contract import CallEstimate
from service.problems import Forbidden, RateLimited
from service.settings import Settings


def limits_uri(redis_url: str, asynchronous: bool) -> str:
    """A redis-py URL as `limits` wants it (``async+redis://…``, ``redis+unix://…``)."""
    uri = "redis+" + redis_url if redis_url.startswith("unix://") else redis_url
    return ("async+" + uri) if asynchronous else uri


def retry_after_s(reset_at: float) -> int:
    """Whole seconds until a window resets (at least 1), for the Retry-After header."""
    return max(1, math.ceil(reset_at - time.time()))


@dataclass(frozen=True)
class KeyLimits:
    """The limits of one key: its own values, else the deployment's defaults (None: no cap)."""

    rate_per_minute: int
    llm_calls_per_day: int | None
    scan_passes_per_day: int | None

    @classmethod
    def of(cls, key: ApiKey, settings: Settings) -> KeyLimits:
        def pick(own: int | None, default: int | None) -> int | None:
            return own if own is not None else default

        return cls(
            rate_per_minute=key.rate_per_minute or settings.key_rate_per_minute,
            llm_calls_per_day=pick(key.llm_calls_per_day, settings.key_llm_calls_per_day),
            scan_passes_per_day=pick(key.scan_passes_per_day, settings.key_scan_passes_per_day),
        )


class RateLimits:
    """The limiters of one API process, on the deployment's Redis (created at startup)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None  # the lifespan checked it
        self.settings = settings
        prefix = settings.redis_keys.rate_limits
        url = settings.redis_url
        self._requests = AsyncMovingWindow(
            AsyncRedisStorage(limits_uri(url, True), implementation="redispy", key_prefix=prefix)
        )
        self._quotas = FixedWindowRateLimiter(RedisStorage(limits_uri(url, False), key_prefix=prefix))

    async def check_request(self, key: ApiKey) -> None:
        """Count one request against the key's per-minute rate; RateLimited when it is used up."""
        item = RateLimitItemPerMinute(KeyLimits.of(key, self.settings).rate_per_minute)
        if await self._requests.hit(item, "requests", key.key_id):
            return
        stats = await self._requests.get_window_stats(item, "requests", key.key_id)
        wait = retry_after_s(stats.reset_time)
        raise RateLimited(
            f"key {key.name!r} made {item.amount} requests in the last minute, its limit; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def _quota_items(self, key: ApiKey, estimate: CallEstimate) -> list[tuple[str, RateLimitItem, int]]:
        limits = KeyLimits.of(key, self.settings)
        quotas = (
            ("llm_calls", limits.llm_calls_per_day, estimate.llm_calls),
            ("scan_passes", limits.scan_passes_per_day, estimate.scan_passes),
        )
        return [(name, RateLimitItemPerDay(limit), cost) for name, limit, cost in quotas if limit is not None]

    def check_quota(self, key: ApiKey, estimate: CallEstimate) -> None:
        """Refuse (Forbidden / RateLimited, with the estimate) a submission whose estimate does not fit."""
        for name, item, cost in self._quota_items(key, estimate):
            what = name.replace("_", " ")
            if cost > item.amount:
                raise Forbidden(
                    f"this request is estimated at {cost} {what}, more than key {key.name!r} may use in a "
                    f"day ({item.amount}): ask for fewer neurons or a larger quota",
                    estimate=estimate,
                )
            if cost and not self._quotas.test(item, name, key.key_id, cost=cost):
                stats = self._quotas.get_window_stats(item, name, key.key_id)
                wait = retry_after_s(stats.reset_time)
                raise RateLimited(
                    f"this request is estimated at {cost} {what}; key {key.name!r} has {stats.remaining} "
                    f"of its {item.amount} per day left; the quota resets in {wait} s",
                    headers={"Retry-After": str(wait)},
                    estimate=estimate,
                )

    def admit(self, key: ApiKey, estimate: CallEstimate) -> None:
        """Refuse a submission that does not fit (see :meth:`check_quota`), else charge its estimate.
        Called just before a job is enqueued: joining a job in flight costs nothing."""
        self.check_quota(key, estimate)
        for name, item, cost in self._quota_items(key, estimate):
            if cost:
                self._quotas.hit(item, name, key.key_id, cost=cost)
