"""The client commands of `neuronlens`: `explain`, `export`, `models`, `jobs`, `cancel`, `check`, `pin` and
`compare`, through the SDK against a running API (``--url``, default $NEURONLENS_API_URL).

`main` is the `neuronlens` command of the client wheel (clients/python: these commands only). The server's
`neuronlens` (service/commands/main.py: `up`, `demo`, `keys` too) adds the same parsers with
`add_client_commands`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from neuronlens.cli.commands import (
    FIELDS_HELP,
    FORMATS,
    add_client_arguments,
    add_export_parser,
    run_explain,
    run_models,
    show_sdk_warnings,
)
from neuronlens.cli.compare import add_compare_parser, run_compare
from neuronlens.cli.jobs import add_jobs_parsers
from neuronlens.cli.pins import add_check_parser, add_pin_parser

DEFAULT_URL = "http://127.0.0.1:8000"


def stop_on_signals(stopping: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stopping``; the caller stops what it started, in order."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            print(f"neuronlens: {signal.Signals(signum).name} again; still stopping", file=sys.stderr)
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_explain(args: argparse.Namespace) -> int:
    if args.neuron is None and args.range is None and args.neurons is None:
        print(
            "neuronlens explain: name the neurons with --neuron N (repeatable), --range START:STOP or "
            "--neurons all",
            file=sys.stderr,
        )
        return 2
    stopping = threading.Event()
    stop_on_signals(stopping)
    return run_explain(args, stopping)


def cmd_compare(args: argparse.Namespace) -> int:
    stopping = threading.Event()
    stop_on_signals(stopping)
    return run_compare(args, stopping)


def cmd_models(args: argparse.Namespace) -> int:
    return run_models(args)


def _neuron_range(text: str) -> dict[str, int]:
    start, sep, stop = text.partition(":")
    if not sep or not start.isdigit() or not stop.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a range: write START:STOP, e.g. 0:64 (STOP exclusive)"
        )
    return {"start": int(start), "stop": int(stop)}


def _layers(text: str) -> str | list[int]:
    if text == "all":
        return "all"
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a layer list: write all, or e.g. 0,2,5")
    return [int(part) for part in parts]


def _add_explain_request(explain: argparse.ArgumentParser) -> None:
    """What `explain` asks for: model, layers, neurons and the request's settings."""
    explain.add_argument(
        "--model", required=True, help="model id, e.g. minilm-l6 (`neuronlens models` lists them)"
    )
    layers = explain.add_mutually_exclusive_group(required=True)
    layers.add_argument("--layer", type=int, help="layer index")
    layers.add_argument(
        "--layers",
        type=_layers,
        help="several layers, e.g. 0,2,5, or all: one request, one scan pass for them all",
    )
    which = explain.add_mutually_exclusive_group()
    which.add_argument("--neuron", type=int, action="append", help="neuron index (repeat for several)")
    which.add_argument("--range", type=_neuron_range, help="neuron range START:STOP (STOP exclusive)")
    which.add_argument(
        "--neurons", choices=["all"], help="all: every neuron of each layer (at most the API's cap per layer)"
    )
    explain.add_argument("--hook", help="hook point id (default: the model's first)")
    explain.add_argument(
        "--units",
        help="neurons (default) or a dictionary id of the model: explain its latents (SAE, transcoder)",
    )
    explain.add_argument("--dataset", help="probe set id (default: the model's first)")
    explain.add_argument("--explainer", help="explainer backend (default: the API's default)")
    explain.add_argument("--simulator", help="simulator backend (default: the API's default)")
    explain.add_argument("--endpoint", help="named LLM endpoint of the deployment, for the openai backends")
    explain.add_argument("--candidates", type=int, help="candidate explanations k for the openai explainer")
    explain.add_argument(
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="a request option (repeatable), e.g. --option seed=1 --option text_threshold=2.5",
    )
    explain.add_argument(
        "--dry-run", action="store_true", help="print what the request would cost (LLM calls, tokens, USD)"
    )
    explain.add_argument("--budget-calls", type=int, metavar="N", help="stop after N LLM calls")
    explain.add_argument("--budget-usd", type=float, metavar="X", help="stop once X USD is spent")


def add_explain_parser(commands: Any, default_url: str) -> None:
    """`neuronlens explain`: submit a request, follow its job, print its reports."""
    explain = commands.add_parser(
        "explain",
        help="explain neurons through a running API",
        epilog="Output: with one --neuron, json is one object; with several --neuron or a --range (even "
        "of one) it is an array. jsonl: one report per line; summary: layer, neuron, type, score, "
        "explanation per line; ndjson, csv, parquet: the finished job's table as the API exports it "
        "(--fields; parquet needs --output). Exit 0 done, 1 failed job or API unreachable, 2 invalid "
        "request, 130 interrupted.",
    )
    _add_explain_request(explain)
    explain.add_argument("--format", choices=FORMATS, default="json", help="output format (default json)")
    explain.add_argument("--fields", choices=("summary", "full"), default="summary", help=FIELDS_HELP)
    explain.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")
    add_client_arguments(explain, default_url)
    explain.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")
    explain.set_defaults(handler=cmd_explain)


def add_models_parser(commands: Any, default_url: str) -> None:
    """`neuronlens models`: the served models."""
    models = commands.add_parser("models", help="list the models a running API serves")
    models.add_argument("--format", choices=("table", "json"), default="table", help="(default table)")
    add_client_arguments(models, default_url)
    models.set_defaults(handler=cmd_models)


def add_client_commands(commands: Any, default_url: str = DEFAULT_URL) -> None:
    """Add `explain`, `export`, `models`, `jobs`, `cancel`, `check`, `pin` and `compare` to a `neuronlens`
    parser's subcommands."""
    add_explain_parser(commands, default_url)
    add_export_parser(commands, default_url)
    add_models_parser(commands, default_url)
    add_jobs_parsers(commands, default_url)
    add_check_parser(commands, default_url)
    add_pin_parser(commands, default_url)
    add_compare_parser(commands, default_url, cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    """The client wheel's `neuronlens`: the client commands only."""
    parser = argparse.ArgumentParser(
        prog="neuronlens",
        description="Client of a NeuronLens API (neuron explanation as a service): explain neurons, "
        "export reports, list models and jobs, cancel jobs, check pins, compare checkpoints.",
    )
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with a `neuronlens` parser and run the chosen command (SDK warnings shown); its exit
    code. The client wheel's and the server's `neuronlens` both run through here."""
    args = parser.parse_args(argv)
    show_sdk_warnings()
    code: int = args.handler(args)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one client command; its exit code."""
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
