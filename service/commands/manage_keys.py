"""`neuronlens keys create|list|revoke`: manage API keys in the deployment's Redis
(service/access/api_keys.py).

The Redis is `--redis-url`, else ``NEURONLENS_REDIS_URL`` (or ``REDIS_URL``); key names carry
``NEURONLENS_REDIS_PREFIX`` like the API's. `create` prints the new key as the last line of stdout, once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import redis

from service.access.api_keys import SCOPES, ApiKey, KeyStore, parse_scopes
from service.commands.stack import redact_url
from service.settings import load_settings


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _scopes(text: str) -> list[str]:
    try:
        return list(parse_scopes(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _connect(args: argparse.Namespace) -> tuple[redis.Redis, KeyStore]:
    url = args.redis_url or os.environ.get("NEURONLENS_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit(
            "neuronlens keys: no Redis: pass --redis-url redis://host:port/db or set NEURONLENS_REDIS_URL"
        )
    connection = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"neuronlens keys: Redis at {redact_url(url)} is unreachable: {exc}") from None
    return connection, KeyStore(load_settings().redis_keys)


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(record: ApiKey) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "scopes": ",".join(record.scopes),
        "rate_per_minute": record.rate_per_minute,
        "llm_calls_per_day": record.llm_calls_per_day,
        "scan_passes_per_day": record.scan_passes_per_day,
        "created_at": _when(record.created_at),
        "revoked_at": _when(record.revoked_at) if record.revoked_at else None,
    }


def cmd_create(args: argparse.Namespace) -> int:
    connection, store = _connect(args)
    try:
        key, record = store.create(
            connection,
            args.name,
            args.scopes,
            rate_per_minute=args.rate_per_minute,
            llm_calls_per_day=args.llm_calls_per_day,
            scan_passes_per_day=args.scan_passes_per_day,
        )
    except ValueError as exc:
        print(f"neuronlens keys create: {exc}", file=sys.stderr)
        return 1
    print(f"created key {record.key_id} for {record.name!r} (scopes {','.join(record.scopes)}); "
          "it is shown only now:")  # fmt: skip
    print(key)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    connection, store = _connect(args)
    rows = [_row(record) for record in store.all(connection)]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    limits = ("rate_per_minute", "llm_calls_per_day", "scan_passes_per_day")
    print(f"{'KEY ID':<13} {'NAME':<20} {'SCOPES':<18} {'RATE/MIN':>8} {'LLM CALLS/DAY':>13} "
          f"{'SCANS/DAY':>9}  {'CREATED':<20} REVOKED")  # fmt: skip
    for row in rows:
        rate, calls, scans = ("default" if row[name] is None else str(row[name]) for name in limits)
        print(f"{row['key_id']:<13} {row['name']:<20} {row['scopes']:<18} {rate:>8} {calls:>13} "
              f"{scans:>9}  {row['created_at']:<20} {row['revoked_at'] or '-'}")  # fmt: skip
    print("default: the API's setting (NEURONLENS_KEY_RATE_PER_MINUTE, NEURONLENS_KEY_LLM_CALLS_PER_DAY, "
          "NEURONLENS_KEY_SCAN_PASSES_PER_DAY; unset: no cap)", file=sys.stderr)  # fmt: skip
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    connection, store = _connect(args)
    revoked = store.revoke(connection, args.key)
    if not revoked:
        print(f"neuronlens keys revoke: no active key named or with id {args.key!r}", file=sys.stderr)
        return 1
    for record in revoked:
        print(f"revoked key {record.key_id} ({record.name!r})")
    return 0


def add_keys_parser(commands: Any) -> None:
    """Add `keys` with its subcommands to the `neuronlens` parser's subcommands."""
    redis_help = "Redis holding the keys (default $NEURONLENS_REDIS_URL, else $REDIS_URL)"
    keys = commands.add_parser("keys", help="create, list or revoke API keys (NEURONLENS_AUTH=keys)")
    keys.add_argument("--redis-url", help=redis_help)
    # --redis-url before or after the action: the action's copy leaves the value alone unless it is given.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--redis-url", default=argparse.SUPPRESS, help=redis_help)
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", parents=[shared], help="make a key; prints it once, as the last line of stdout"
    )
    create.add_argument("--name", required=True, help="who the key is for (unique among active keys)")
    create.add_argument(
        "--scopes",
        type=_scopes,
        default=["read"],
        help=f"comma-separated, of {', '.join(SCOPES)} (default read)",
    )
    create.add_argument("--rate-per-minute", type=_positive, help="requests per minute (default: the API's)")
    create.add_argument("--llm-calls-per-day", type=_positive, help="estimated LLM calls per day")
    create.add_argument("--scan-passes-per-day", type=_positive, help="scan passes per day")
    create.set_defaults(handler=cmd_create)
    listing = actions.add_parser("list", parents=[shared], help="every key made (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list)
    revoke = actions.add_parser(
        "revoke", parents=[shared], help="revoke the active key(s) with this name or key id"
    )
    revoke.add_argument("key", help="key name or key id (from `keys list`)")
    revoke.set_defaults(handler=cmd_revoke)
