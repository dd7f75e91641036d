"""`neuronlens check` (pins a CI build can fail on) and `neuronlens pin` (pins written from a finished job).

`check PINS --model M` sends the pin file as `POST /v1/checks`, waits, prints a table (or JSON) and exits:

0   every pin passed
1   a pin failed (the table and the JUnit XML say which, with the numbers)
2   the check could not be made: a bad pin file or request, the API unreachable or refusing, the check
    failed to run, or --timeout passed

`--junit FILE` writes JUnit XML (neuronlens/junit.py) whenever the check ran, pass or fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from neuronlens import Client, ClientError, RequestRejected
from neuronlens._contract import CheckStatus
from neuronlens.cli.commands import add_client_arguments, failed, parse_options
from neuronlens.junit import junit_xml
from neuronlens.pins import YAML_SUFFIXES, dump_pin_file, pins_from_reports, read_pin_file

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _table(status: CheckStatus) -> str:
    """One line per pin: PASS/FAIL, name, score, type, drop, why; then the verdict."""
    lines = ["result\tpin\tscore\ttype\tdrop\twhy"]
    for result in status.results or []:
        score = "-" if result.score is None else f"{result.score:.4f}"
        drop = "-" if result.score_drop is None else f"{result.score_drop:+.4f}"
        verdict = "PASS" if result.passed else "FAIL"
        why = "; ".join(result.failures)
        lines.append(f"{verdict}\t{result.name}\t{score}\t{result.neuron_type or '-'}\t{drop}\t{why}")
    failed_pins = status.pins_failed or 0
    summary = "passed" if status.passed else "FAILED"
    lines.append(
        f"{status.model}: {status.pins_total - failed_pins}/{status.pins_total} pins held: {summary}"
    )
    return "\n".join(lines)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        name: getattr(args, name) for name in ("hook", "units", "dataset", "simulator", "endpoint")
    }
    options = parse_options(args.option)
    if options:
        fields["options"] = options
    budget = {"max_llm_calls": args.budget_calls, "max_cost_usd": args.budget_usd}
    if any(value is not None for value in budget.values()):
        fields["budget"] = {k: v for k, v in budget.items() if v is not None}
    return fields


def run_check(args: argparse.Namespace) -> int:
    """`neuronlens check`: see the module docstring for the exit codes."""
    try:
        pin_file = read_pin_file(args.pins)
        fields = _fields(args)
        if pin_file.options and "options" in fields:
            fields["options"] = {**pin_file.options.model_dump(), **fields["options"]}
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            if args.dry_run:
                estimate = client.submit_check(pin_file, args.model, dry_run=True, **fields)
                print(json.dumps(estimate.model_dump(mode="json"), indent=2))
                return EXIT_PASSED
            progress = None if args.quiet else _Progress()
            status = client.check(pin_file, args.model, progress=progress, timeout_s=args.timeout, **fields)
    except ClientError as exc:
        failed("check", exc)
        return EXIT_ERROR
    if args.junit:
        Path(args.junit).write_text(junit_xml(status), encoding="utf-8")
    if args.format == "json":
        print(status.model_dump_json(indent=2, exclude_none=True))
    else:
        print(_table(status))
    return EXIT_PASSED if status.passed else EXIT_FAILED


class _Progress:
    """The check's state on stderr, one line per change."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, status: CheckStatus) -> None:
        if status.status != self.last and status.status not in ("finished", "failed"):
            print(f"neuronlens check: {status.check_id} {status.status}", file=sys.stderr)
        self.last = status.status


def run_pin(args: argparse.Namespace) -> int:
    """`neuronlens pin --from-job ID`: a pin file from a finished job's reports (exit 0, 2 on errors)."""
    if args.min_score is None and args.max_score_drop is None and args.no_type:
        print("neuronlens pin: pin something: --min-score, --max-score-drop, or the type", file=sys.stderr)
        return EXIT_ERROR
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            reports = list(client.iter_reports(args.from_job))
        pin_file, left_out = pins_from_reports(
            reports, min_score=args.min_score, max_score_drop=args.max_score_drop, pin_type=not args.no_type
        )
        if pin_file is None:
            raise RequestRejected(f"no report of job {args.from_job} reaches --min-score {args.min_score}")
    except ClientError as exc:
        failed("pin", exc)
        return EXIT_ERROR
    as_json = args.output is not None and Path(args.output).suffix.lower() == ".json"
    text = dump_pin_file(pin_file, yaml_format=not as_json)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    where = f" to {args.output}" if args.output else ""
    note = f"; {len(left_out)} left out (score undefined or below --min-score)" if left_out else ""
    print(f"neuronlens pin: {len(pin_file.pins)} pin(s) written{where}{note}", file=sys.stderr)
    return EXIT_PASSED


def add_check_parser(commands: Any, default_url: str) -> None:
    """`neuronlens check`: re-score a pin file's explanations on a model; exit 1 when a pin fails."""
    check = commands.add_parser(
        "check",
        help="check pins (a YAML or JSON pin file) on a model: exit 1 when a pin fails (for CI)",
        epilog="Exit 0 every pin passed, 1 a pin failed, 2 the check could not be made (bad pin file or "
        "request, API unreachable, the check failed to run, --timeout). --junit FILE writes JUnit XML "
        "whenever the check ran.",
    )
    check.add_argument("pins", help="pin file, YAML (.yaml/.yml) or JSON (.json); by content otherwise")
    check.add_argument("--model", help="model to check (overrides the pin file's `model`)")
    check.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML to FILE")
    check.add_argument("--format", choices=("table", "json"), default="table", help="output (default table)")
    check.add_argument("--hook", help="hook point (overrides the pin file's)")
    check.add_argument("--units", help="dictionary whose latents the pins name (overrides the pin file's)")
    check.add_argument("--dataset", help="probe set (overrides the pin file's)")
    check.add_argument("--simulator", help="simulator backend, baseline or openai (overrides the pin file's)")
    check.add_argument("--endpoint", help="named LLM endpoint for the openai simulator")
    check.add_argument("--option", action="append", metavar="NAME=VALUE", help="an option (repeatable)")
    check.add_argument("--budget-calls", type=int, metavar="N", help="stop after N LLM calls")
    check.add_argument("--budget-usd", type=float, metavar="X", help="stop once X USD is spent")
    check.add_argument("--dry-run", action="store_true", help="print the estimate (LLM calls), check nothing")
    add_client_arguments(check, default_url)
    check.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 2)")
    check.add_argument("--quiet", action="store_true", help="no progress lines")
    check.set_defaults(handler=run_check)


def add_pin_parser(commands: Any, default_url: str) -> None:
    """`neuronlens pin`: write a pin file from a finished job's reports."""
    pin = commands.add_parser(
        "pin",
        help="write pins from a finished job's reports (explanation, type, score as base_score)",
        epilog="Reports whose score is undefined or below --min-score are left out (they would fail at "
        "once). Writes YAML (JSON for an --output ending in .json). Exit 0 written, 2 on errors.",
    )
    pin.add_argument("--from-job", required=True, metavar="ID", help="finished job id (exp-…)")
    pin.add_argument("--min-score", type=float, metavar="X", help="each pin's minimum score (-1 … 1)")
    pin.add_argument(
        "--max-score-drop", type=float, metavar="D", help="each pin's maximum drop from its score now"
    )
    pin.add_argument("--no-type", action="store_true", help="do not pin the neuron's type")
    pin.add_argument(
        "--output",
        metavar="FILE",
        help=f"write to FILE ({'/'.join(YAML_SUFFIXES)} or .json) instead of stdout",
    )
    add_client_arguments(pin, default_url)
    pin.set_defaults(handler=run_pin)
