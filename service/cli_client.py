"""The client side of the `neuronlens` command: `explain` and `models` through the SDK (neuronlens.Client).

Output formats of `explain` (stdout, or ``--output FILE``):

json      one report as an object when the request names a single neuron (one --neuron); an array of
          reports whenever it names several neurons or a --range (even a range of one)
jsonl     one report per line
csv       one summary row per neuron (neuronlens.SUMMARY_COLUMNS) with a header
summary   one tab-separated line per neuron: layer, neuron, type, score, explanation
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import IO, Any

from pydantic import ValidationError

from neuronlens import Client, ClientError, JobStatus, NeuronReport, PipelineOptions, RequestRejected
from neuronlens._contract import CostEstimate
from neuronlens.export import json_text, summary_line, write_csv, write_jsonl

FORMATS = ("json", "jsonl", "csv", "summary")
BAR_WIDTH = 24


class Interrupted(ClientError):
    """Ctrl-C or SIGTERM while following a job (the job itself keeps running on the server)."""

    exit_code = 130


class ProgressBar:
    """Job progress on stderr: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: IO[str] = sys.stderr, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.is_tty = stream.isatty()
        self.last = ""

    def __call__(self, status: JobStatus) -> None:
        if self.quiet:
            return
        line = self.render(status)
        if line == self.last:
            return
        self.last = line
        self.stream.write("\r\x1b[2K" + line if self.is_tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.is_tty and self.last and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def render(status: JobStatus) -> str:
        done, total = status.progress.done, status.progress.total
        filled = BAR_WIDTH * done // total if total else 0
        line = f"{status.status:<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
        if status.queue_position is not None:
            line += f"  queue position {status.queue_position}"
        return line


def show_sdk_warnings(stream: IO[str] = sys.stderr) -> None:
    """The SDK's warnings (retries, a job no worker runs) on stderr, one line each."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("neuronlens: warning: %(message)s"))
    sdk_log = logging.getLogger("neuronlens")
    sdk_log.addHandler(handler)
    sdk_log.setLevel(logging.WARNING)


def _option_value(text: str) -> Any:
    """A value as JSON reads it (`5`, `2.5`, `["detection"]`), else the text itself (`quantile`): options
    are validated strictly, as the API does, so a number must arrive as a number."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``--option NAME=VALUE`` pairs as request options, typed by PipelineOptions (exit 2 when wrong)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RequestRejected(f"--option {pair!r}: write NAME=VALUE, e.g. --option seed=1")
        if name not in PipelineOptions.model_fields:
            allowed = ", ".join(PipelineOptions.model_fields)
            raise RequestRejected(f"--option {name}: unknown option; choose one of {allowed}")
        options[name] = _option_value(value.strip())
    try:
        return PipelineOptions.model_validate(options).model_dump(mode="json", include=set(options))
    except ValidationError as exc:
        named = [f"--option {'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()]
        raise RequestRejected("; ".join(named).replace("Value error, ", "")) from exc


def write_reports(reports: list[NeuronReport], fmt: str, single: bool, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json_text(reports, single) + "\n")
    elif fmt == "jsonl":
        write_jsonl(reports, out)
    elif fmt == "csv":
        write_csv(reports, out)
    else:
        out.writelines(summary_line(report) + "\n" for report in reports)
    out.flush()


def describe_estimate(estimate: CostEstimate) -> str:
    """A dry run's estimate in a few readable lines."""
    llm, scan = estimate.llm, estimate.scan

    def count(value: int | None) -> str:
        return "unknown" if value is None else f"{value:,}"

    cost = "unknown (the endpoint has no prices)" if llm.cost_usd is None else f"${llm.cost_usd:,.4f}"
    return "\n".join(
        [
            f"{estimate.model} layers {', '.join(map(str, estimate.layers))}: "
            f"{estimate.neurons_to_explain:,} neurons to explain "
            f"({estimate.reports_stored:,} of {estimate.neurons:,} already stored)",
            f"scan: {scan.passes} pass(es), {scan.samples:,} samples, {count(scan.tokens)} tokens",
            f"LLM calls: {llm.calls:,}",
            f"prompt tokens: {count(llm.prompt_tokens)}, completion tokens: {count(llm.completion_tokens)}",
            f"cost: {cost}",
            f"basis: {estimate.basis}",
        ]
    )


def explain_fields(args: argparse.Namespace) -> dict[str, Any]:
    names = ("hook", "dataset", "explainer", "simulator", "endpoint", "candidates")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def follow(
    client: Client,
    request: dict[str, Any],
    quiet: bool,
    timeout_s: float | None,
    stopping: threading.Event,
) -> list[NeuronReport]:
    """Submit ``request`` (model, layer, neurons, options, fields) and wait, drawing progress on stderr."""
    bar = ProgressBar(quiet=quiet)

    def progress(status: JobStatus) -> None:
        bar(status)
        if stopping.is_set():
            raise Interrupted(f"interrupted; job {status.job_id} goes on in the service")

    try:
        return client.explain(progress=progress, timeout_s=timeout_s, **request)
    finally:
        bar.close()


def run_explain(args: argparse.Namespace, stopping: threading.Event) -> int:
    """`neuronlens explain`: reports in ``args.format`` on stdout or in ``args.output``."""
    try:
        neurons: Any = args.range if args.range is not None else args.neuron
        request = {"model": args.model, "layer": args.layer, "neurons": neurons, **explain_fields(args)}
        options = parse_options(args.option)
        if options:
            request["options"] = options
        budget = {"max_llm_calls": args.budget_calls, "max_cost_usd": args.budget_usd}
        if any(value is not None for value in budget.values()):
            request["budget"] = {k: v for k, v in budget.items() if v is not None}
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            if args.dry_run:
                print(describe_estimate(client.estimate(**request)))
                return 0
            reports = follow(client, request, args.quiet, args.timeout, stopping)
    except ClientError as exc:
        print(f"neuronlens explain: {exc}", file=sys.stderr)
        return exc.exit_code
    single = args.range is None and len(set(args.neuron)) == 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            write_reports(reports, args.format, single, out)
        print(f"neuronlens explain: {len(reports)} report(s) written to {args.output}", file=sys.stderr)
    else:
        write_reports(reports, args.format, single, sys.stdout)
    return 0


def run_models(args: argparse.Namespace) -> int:
    """`neuronlens models`: the served models, as a table or JSON."""
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            models = client.models()
    except ClientError as exc:
        print(f"neuronlens models: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.format == "json":
        print(json_text_models(models))
        return 0
    print("model\tmodality\tlayers\tneurons/layer\thooks\tdatasets")
    for model in models:
        hooks = ",".join(point.id for point in model.hook_points)
        print(
            f"{model.id}\t{model.modality}\t{model.layers}\t{model.neurons_per_layer}\t{hooks}\t"
            + ",".join(model.datasets)
        )
    return 0


def json_text_models(models: list[Any]) -> str:
    return json.dumps([model.model_dump(mode="json") for model in models], indent=2)


def add_client_arguments(parser: argparse.ArgumentParser, default_url: str) -> None:
    """--url, --api-key and --retries, shared by the client commands."""
    parser.add_argument(
        "--url",
        default=os.environ.get("NEURONLENS_API_URL", default_url),
        help=f"API base URL (default $NEURONLENS_API_URL or {default_url})",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key sent as `Authorization: Bearer` (default $NEURONLENS_API_KEY)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=4,
        help="retries of a request after a 503 or a connection error (default 4; honours Retry-After)",
    )
