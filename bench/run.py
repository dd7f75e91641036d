"""Run every bench/bench_*.py and print one markdown table: | figure | value | goal | detail |.

Each bench module exposes ``main() -> list[dict]`` with rows ``{"figure", "value", "goal", "detail"}``.
A bench that raises (or returns malformed rows) gets a row with its error, and the exit code is 1.
Usage: ``python bench/run.py [NAME ...]`` (names like ``scan`` or ``bench_scan``; default: all).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
COLUMNS = ("figure", "value", "goal", "detail")


def discover(names: list[str]) -> list[Path]:
    """The bench scripts to run, sorted; ``names`` filters them (with or without the ``bench_`` prefix)."""
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not names:
        return scripts
    wanted = {name if name.startswith("bench_") else f"bench_{name}" for name in names}
    unknown = wanted - {script.stem for script in scripts}
    if unknown:
        known = ", ".join(script.stem for script in scripts) or "none"
        raise SystemExit(f"no bench named {', '.join(sorted(unknown))}: choose from {known}")
    return [script for script in scripts if script.stem in wanted]


def load(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench.{script.stem}", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checked_rows(rows: object, name: str) -> list[dict[str, str]]:
    """Rows as string dicts with exactly the four columns; a clear error otherwise."""
    if not isinstance(rows, list) or not rows:
        raise TypeError(f"{name}.main() must return a non-empty list of rows, got {type(rows).__name__}")
    result = []
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(COLUMNS):
            raise TypeError(f"{name}.main() returned a row without exactly the keys {COLUMNS}: {row!r}")
        result.append({column: str(row[column]) for column in COLUMNS})
    return result


def run_one(script: Path) -> tuple[list[dict[str, str]], bool]:
    """(rows, ok) for one bench; a failure becomes one row that carries the error."""
    started = time.perf_counter()
    try:
        rows = checked_rows(load(script).main(), script.stem)
        return rows, True
    except Exception as exc:  # a failing bench must not hide the others' figures
        traceback.print_exc(file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        seconds = time.perf_counter() - started
        return [
            {
                "figure": script.stem,
                "value": "ERROR",
                "goal": "-",
                "detail": f"{error} (after {seconds:.1f}s)",
            }
        ], False


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[column]) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    scripts = discover(sys.argv[1:] if argv is None else argv)
    if not scripts:
        print(f"no bench_*.py in {BENCH_DIR}", file=sys.stderr)
        return 1
    all_rows: list[dict[str, str]] = []
    failed = []
    for script in scripts:
        print(f"running {script.stem} ...", file=sys.stderr, flush=True)
        rows, ok = run_one(script)
        all_rows += rows
        if not ok:
            failed.append(script.stem)
    print(markdown_table(all_rows))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Benches import the project (service, workers) from the repo root, however this script is started.
    sys.path.insert(0, str(BENCH_DIR.parent))
    sys.exit(main())
