"""The `neuronlens` command: `up` (the whole stack in the foreground), `explain` and `models` (clients of
a running API), `demo`.

No torch and no `workers` import here: the API and workers run as child processes (service/commands/stack.py),
and `explain`/`models` talk HTTP through the SDK (neuronlens.Client; neuronlens/cli/commands.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from neuronlens import Client, ClientError
from neuronlens.cli.commands import (
    FIELDS_HELP,
    FORMATS,
    add_client_arguments,
    add_export_parser,
    follow,
    run_explain,
    run_models,
    show_sdk_warnings,
)
from neuronlens.export import describe
from service.commands.embedded_redis import free_port
from service.commands.manage_keys import add_keys_parser
from service.commands.stack import (
    DEFAULT_GRACE_S,
    Stack,
    StackError,
    external_redis_url,
    redact_url,
)
from service.settings import default_data_dir
from service.viewer.saved_page import save_page

DEFAULT_URL = "http://127.0.0.1:8000"
DEMO_REQUEST: dict[str, Any] = {"model": "minilm-l6", "layer": 3, "neurons": [42]}
DEMO_OUTPUT = "neuronlens-demo-report.json"


def _stop_on_signals(stopping: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stopping``; the caller stops its processes in order."""

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
    _stop_on_signals(stopping)
    return run_explain(args, stopping)


def cmd_models(args: argparse.Namespace) -> int:
    return run_models(args)


def _describe_stack(stack: Stack) -> str:
    redis = redact_url(stack.effective_redis_url) + (" (embedded)" if stack.redis is not None else "")
    data = f"; data in {stack.data_dir}" if stack.data_dir is not None and stack.redis is not None else ""
    return f"NeuronLens API on {stack.api_url}  (redis {redis}; {stack.n_workers} worker(s){data})"


def supervise(stack: Stack, stopping: threading.Event) -> int:
    """Run until a signal (exit 0) or until the embedded Redis dies (reported; exit 1); a worker or the API
    that dies is started again (Stack.heal). Always stops the stack."""
    try:
        stack.start()
        if stopping.is_set():
            return 0
        print(_describe_stack(stack), flush=True)
        print("Ctrl-C stops every process started here.", file=sys.stderr, flush=True)
        while not stopping.wait(0.2):
            dead = stack.dead_redis()
            if dead is not None:
                print(
                    f"neuronlens: {dead.name} (pid {dead.pid}) {dead.describe_exit()} unexpectedly; "
                    "stopping the stack",
                    file=sys.stderr,
                )
                return 1
            stack.heal()
        return 0
    except StackError as exc:
        print(f"neuronlens up: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("neuronlens: stopped", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    if args.workers < 0:
        print("neuronlens up: --workers must be 0 or more", file=sys.stderr)
        return 2
    stopping = threading.Event()
    _stop_on_signals(stopping)
    return supervise(up_stack(args, os.environ, stopping), stopping)


def up_stack(args: argparse.Namespace, env: Mapping[str, str], stopping: threading.Event) -> Stack:
    """The stack of `neuronlens up`: Redis data in the data folder (--data-dir, else the default one), and
    the artifact store in its `artifacts/` unless NEURONLENS_ARTIFACT_URL names one; the default data
    folder's `artifacts/` is the settings' default store, the one `neuronlens demo` uses."""
    return Stack(
        host=args.host,
        port=args.port,
        n_workers=args.workers,
        redis_url=external_redis_url(env),
        env=dict(env),
        grace_s=args.grace,
        stopping=stopping,
        data_dir=(args.data_dir or default_data_dir(env)).resolve(),
    )


def demo_stack(
    args: argparse.Namespace, env: Mapping[str, str], output: IO[bytes], stopping: threading.Event
) -> Stack:
    """The stack of `neuronlens demo`: a temporary Redis, one worker, and the default artifact store
    (NEURONLENS_ARTIFACT_URL, else the settings' default: the store `neuronlens up` uses by default), so
    the demo's scan is reused by `up` and the other way round."""
    return Stack(
        port=args.port or free_port(),
        n_workers=1,
        redis_url=external_redis_url(env),
        env=dict(env),
        output=output,
        stopping=stopping,
    )


def demo_explain(args: argparse.Namespace, stack: Stack, stopping: threading.Event) -> int:
    """Explain DEMO_REQUEST on the demo stack: a short summary on stdout, the report as JSON in a file."""
    try:
        with Client(stack.api_url) as client:
            (report,) = follow(client, dict(DEMO_REQUEST), args.quiet, args.timeout, stopping, "demo")
            page = client.page_url(report.model, report.layer, report.neuron)
            with httpx.Client(timeout=30) as http:
                html = save_page(page, http)
    except (ClientError, httpx.HTTPError) as exc:
        print(f"neuronlens demo: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, ClientError) else 1
    output = Path(args.output)
    output.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    # The stack stops when the demo ends: the neuron's page is kept as a file that works offline (no links
    # to the stopped API, images inlined).
    saved_page = output.with_suffix(".html")
    saved_page.write_text(html, encoding="utf-8")
    if args.serve:
        print(describe(report, page_url=page))
        print(f"  report JSON: {output.resolve()}")
        print(f"serving {stack.api_url} until Ctrl-C (the page above, GET /v1/models, ...)", flush=True)
        stopping.wait()
    else:
        print(describe(report, page_url=saved_page.resolve().as_uri()))
        print(f"  report JSON: {output.resolve()}")
        print(f"  (saved from {page}; `neuronlens demo --serve` keeps the stack and its viewer up)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded stack (a free port unless --port), one explanation, everything stopped again (at once, or
    on Ctrl-C with --serve); the stack's logs go to a file."""
    stopping = threading.Event()
    _stop_on_signals(stopping)
    log_dir = Path(tempfile.mkdtemp(prefix="neuronlens-demo-"))
    log_path = log_dir / "stack.log"
    with log_path.open("wb") as log_file:
        stack = demo_stack(args, os.environ, log_file, stopping)
        code = 1
        try:
            print("neuronlens demo: starting Redis, the API and a worker ...", file=sys.stderr, flush=True)
            stack.start()
            print(_describe_stack(stack), file=sys.stderr, flush=True)
            print(
                f"explaining {DEMO_REQUEST} (the first run scans the layer; later runs reuse the scan)",
                file=sys.stderr,
                flush=True,
            )
            if not stopping.is_set():
                code = demo_explain(args, stack, stopping)
        except StackError as exc:
            print(f"neuronlens demo: {exc}", file=sys.stderr)
        finally:
            stack.stop()
    if code == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"neuronlens demo: failed; the stack's log is {log_path}; its end:\n{tail}", file=sys.stderr)
    return code


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


def _add_explain(commands: Any) -> None:
    explain = commands.add_parser(
        "explain",
        help="explain neurons through a running API",
        epilog="Output: with one --neuron, json is one object; with several --neuron or a --range (even "
        "of one) it is an array. jsonl: one report per line; summary: layer, neuron, type, score, "
        "explanation per line; ndjson, csv, parquet: the finished job's table as the API exports it "
        "(--fields; parquet needs --output). Exit 0 done, 1 failed job or API unreachable, 2 invalid "
        "request, 130 interrupted.",
    )
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
    explain.add_argument("--format", choices=FORMATS, default="json", help="output format (default json)")
    explain.add_argument("--fields", choices=("summary", "full"), default="summary", help=FIELDS_HELP)
    explain.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")
    add_client_arguments(explain, DEFAULT_URL)
    explain.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")
    explain.set_defaults(handler=cmd_explain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuronlens", description="Neuron explanation as a service.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run Redis (unless REDIS_URL is set), the API and workers")
    up.add_argument("--host", default="127.0.0.1", help="address the API binds (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    up.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    up.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help=f"seconds a process gets to stop before it is killed (default {DEFAULT_GRACE_S:g})",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the embedded Redis's append-only file and, unless NEURONLENS_ARTIFACT_URL is set, "
        "the artifact store (default $XDG_DATA_HOME/neuronlens or ~/.local/share/neuronlens, whose "
        "artifacts/ is also the store of `neuronlens demo`)",
    )
    up.set_defaults(handler=cmd_up)

    _add_explain(commands)
    add_export_parser(commands, DEFAULT_URL)

    models = commands.add_parser("models", help="list the models a running API serves")
    models.add_argument("--format", choices=("table", "json"), default="table", help="(default table)")
    add_client_arguments(models, DEFAULT_URL)
    models.set_defaults(handler=cmd_models)

    demo = commands.add_parser(
        "demo", help="start the embedded stack, explain minilm-l6 layer 3 neuron 42, print a summary, stop"
    )
    demo.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument(
        "--output", default=DEMO_OUTPUT, help=f"where the report JSON goes (default ./{DEMO_OUTPUT})"
    )
    demo.add_argument("--serve", action="store_true", help="keep the stack up after the summary until Ctrl-C")
    demo.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    demo.set_defaults(handler=cmd_demo)
    add_keys_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_sdk_warnings()
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
