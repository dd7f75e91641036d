"""Write the OpenAPI document of the app to openapi/openapi.json: ``python -m service.http.openapi
[--check]``.

The output is deterministic (sorted keys, indent 2, trailing newline), so the committed file can be
compared byte for byte; ``--check`` exits 1 when it differs from what the code generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.http.app import create_app
from service.settings import load_settings

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def render_openapi() -> str:
    """The OpenAPI document as text. Built from an app that never starts (no Redis needed)."""
    app = create_app(load_settings(redis_url=None))
    document = _sorted(app.openapi_schema.to_schema())
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _sorted(value: Any, parent: str = "") -> Any:
    """``value`` with every object's keys sorted, except the media types of a `content` map: their order
    is the server's preference, which generated clients follow (the first type they can read wins)."""
    if isinstance(value, dict):
        items = value.items() if parent == "content" else sorted(value.items())
        return {key: _sorted(item, key) for key, item in items}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.http.openapi", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_PATH, help=f"where to write (default {DEFAULT_PATH})"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the generated one"
    )
    args = parser.parse_args(argv)
    text = render_openapi()
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            print(
                f"{args.output} is out of date with the code: "
                "run `python -m service.http.openapi` (or `make openapi`)",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
