"""`neuronlens compare BASE TARGET`: compare two checkpoints through the SDK (`Client.compare`), wait with
progress on stderr, and print the verdicts.

Output formats (stdout, or ``--output FILE``):

table     verdict counts, then one line per neuron sorted by score drop (largest first; neurons without
          a drop last): layer, neuron, verdict, both types, agreement, Jaccard, max ratio, base score →
          score on the target, drop, the base's explanation
json      the finished comparison (`ComparisonStatus`) with every NeuronComparison
ndjson    the API's table of the comparison (`GET /v1/comparisons/{id}/rows`), one JSON row per neuron;
csv       the same as CSV with a header; parquet: as Parquet (needs --output)
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from neuronlens import Client, ClientError
from neuronlens._comparing import describe_comparison
from neuronlens._contract import comparisons
from neuronlens.cli.commands import (
    BAR_WIDTH,
    TABLE_FORMATS,
    Interrupted,
    ProgressBar,
    add_client_arguments,
    check_table_output,
    failed,
    parse_options,
    write_table,
)

FORMATS = ("table", "json", *TABLE_FORMATS)
EXPLANATION_WIDTH = 60
"""Characters of the base's explanation shown per table line."""


class ComparisonBar(ProgressBar):
    """A comparison's progress on stderr: its state, neurons compared, verdicts so far."""

    @staticmethod
    def render(status: Any) -> str:
        done, total = status.progress.done, status.progress.total
        filled = BAR_WIDTH * done // total if total else 0
        line = f"{status.status:<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} neurons"
        counts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(status.verdicts.items()) if n)
        return line + (f"  ({counts})" if counts else "")


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def by_score_drop(items: Sequence[comparisons.NeuronComparison]) -> list[comparisons.NeuronComparison]:
    """Largest score drop first; neurons without one last, by (layer, neuron)."""
    return sorted(
        items,
        key=lambda item: (item.score_drop is None, -(item.score_drop or 0.0), item.layer, item.neuron),
    )


def verdict_table(status: comparisons.ComparisonStatus) -> str:
    """The readable table of a finished comparison (see the module's docstring)."""
    counts = ", ".join(f"{v} {status.verdicts.get(v, 0)}" for v in comparisons.VERDICTS)
    lines = [
        f"{status.comparison_id}: {status.base} -> {status.target}"
        f"{'' if status.units is None else f' (latents of {status.units})'}, layers "
        f"{', '.join(map(str, status.layers))}: {counts}",
        "layer\tneuron\tverdict\ttypes\tpearson\tjaccard\tmax_ratio\tscore (base -> target)\tdrop\t"
        "explanation",
    ]
    for item in by_score_drop(status.comparisons or []):
        types = f"{item.base_type or '-'}->{item.target_type or '-'}"
        explanation = " ".join((item.base_explanation or "").split())  # one line, whatever the tokens
        if len(explanation) > EXPLANATION_WIDTH:
            explanation = explanation[: EXPLANATION_WIDTH - 1] + "…"
        scores = f"{_number(item.base_score)} -> {_number(item.base_score_on_target)}"
        lines.append(
            f"L{item.layer}\tN{item.neuron}\t{item.verdict}\t{types}\t{_number(item.pearson_max)}\t"
            f"{_number(item.jaccard_top)}\t{_number(item.max_ratio)}\t{scores}\t{_number(item.score_drop)}\t"
            f"{explanation}"
        )
    return "\n".join(lines) + "\n"


def describe_comparison_estimate(estimate: comparisons.ComparisonEstimate) -> str:
    """A comparison's dry run in a few readable lines."""
    base, scan = estimate.base, estimate.target_scan
    return "\n".join(
        [
            f"{estimate.neurons:,} neurons compared; base {base.model}: {base.neurons_to_explain:,} to "
            f"explain ({base.reports_stored:,} already stored), scan {base.scan.passes} pass(es)",
            f"target scan: {scan.passes} pass(es), {scan.samples:,} samples",
            f"LLM calls: at most {estimate.llm_calls_max:,} (base explanations {base.llm.calls:,}, "
            f"re-scoring {estimate.rescore_llm_calls:,}, fresh explanations at most "
            f"{estimate.explanation_calls_max:,})",
        ]
    )


def _neurons(text: str) -> Any:
    """`all`, a range `START:STOP` or a list `1,5,9`."""
    if text == "all":
        return "all"
    start, sep, stop = text.partition(":")
    if sep and start.isdigit() and stop.isdigit():
        return {"start": int(start), "stop": int(stop)}
    parts = [part.strip() for part in text.split(",")]
    if not sep and parts and all(part.isdigit() for part in parts):
        return [int(part) for part in parts]
    raise argparse.ArgumentTypeError(f"{text!r} is not a neuron choice: write all, START:STOP or e.g. 1,5,9")


def _layers(text: str) -> Any:
    if text == "all":
        return "all"
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a layer list: write all, or e.g. 0,2,5")
    return [int(part) for part in parts]


def compare_request(args: argparse.Namespace) -> dict[str, Any]:
    """The `Client.compare` arguments of the command line."""
    names = ("hook", "units", "dataset", "explainer", "simulator", "endpoint", "reexplain")
    request: dict[str, Any] = {"base": args.base, "target": args.target, "layers": args.layers}
    request["neurons"] = args.neurons
    request.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    options = parse_options(args.option)
    if options:
        request["options"] = options
    budget = {"max_llm_calls": args.budget_calls, "max_cost_usd": args.budget_usd}
    if any(value is not None for value in budget.values()):
        request["budget"] = {k: v for k, v in budget.items() if v is not None}
    return request


def _follow(
    client: Client, request: dict[str, Any], args: argparse.Namespace, stopping: threading.Event
) -> comparisons.ComparisonStatus:
    """Submit, say the comparison id and viewer page at once, wait with progress on stderr."""
    bar = ComparisonBar(quiet=args.quiet)

    def progress(status: comparisons.ComparisonStatus) -> None:
        bar(status)
        if stopping.is_set():
            raise Interrupted(f"interrupted; {describe_comparison(status)} goes on in the service")

    try:
        accepted = client.compare(**request, wait=False)
        cmp_id = accepted.comparison_id
        viewer = f"{client.url}/view/comparisons/{cmp_id}"
        print(f"neuronlens compare: comparison {cmp_id}; viewer: {viewer}", file=sys.stderr, flush=True)
        return client.wait_comparison(cmp_id, progress=progress, timeout_s=args.timeout)
    finally:
        bar.close()


def _write_text(text: str, output: str | None, what: str, out: IO[str] = sys.stdout) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"neuronlens compare: {what} written to {output}", file=sys.stderr)
    else:
        out.write(text)
        out.flush()


def run_compare(args: argparse.Namespace, stopping: threading.Event) -> int:
    """`neuronlens compare`: the comparison in ``args.format`` on stdout or in ``args.output``."""
    try:
        request = compare_request(args)
        if args.format == "parquet" and not args.dry_run:
            check_table_output(args.format, args.output)
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            if args.dry_run:
                print(describe_comparison_estimate(client.estimate_comparison(**request)))
                return 0
            status = _follow(client, request, args, stopping)
            total = f"{status.comparisons_total or 0} neuron(s)"
            if args.format in TABLE_FORMATS:
                data = client.export_comparison(status.comparison_id, format=args.format)
                write_table(data, args.output, total, "compare")
                return 0
    except ClientError as exc:
        return failed("compare", exc)
    text = status.model_dump_json(indent=2) + "\n" if args.format == "json" else verdict_table(status)
    _write_text(text, args.output, total)
    return 0


def add_compare_parser(commands: Any, default_url: str, handler: Any) -> None:
    """`neuronlens compare BASE TARGET`: compare two checkpoints, print the verdicts."""
    compare = commands.add_parser(
        "compare",
        help="compare the neurons of two checkpoints through a running API",
        epilog="Output: table (default) lists verdict counts and every neuron by score drop; json is the "
        "finished comparison; ndjson, csv, parquet: the API's table of it (parquet needs --output). Exit 0 "
        "done, 1 failed comparison or API unreachable, 2 invalid request, 130 interrupted.",
    )
    compare.add_argument("base", help="base model id (`neuronlens models` lists them)")
    compare.add_argument("target", help="target model id: same tokenizer, hook point and widths")
    compare.add_argument("--layers", type=_layers, required=True, help="layers: all, or e.g. 0 or 0,2,5")
    compare.add_argument(
        "--neurons", type=_neurons, required=True, help="neurons of each layer: all, START:STOP or e.g. 1,5,9"
    )
    compare.add_argument("--hook", help="hook point id (default: the base's first)")
    compare.add_argument(
        "--units", help="compare the latents of this dictionary (attached to both models) instead of neurons"
    )
    compare.add_argument("--dataset", help="probe set both are scanned on (default: the base's first)")
    compare.add_argument("--explainer", help="explainer backend (default: the API's default)")
    compare.add_argument("--simulator", help="simulator backend: re-scores the base's explanations")
    compare.add_argument("--endpoint", help="named LLM endpoint of the deployment, for the openai backends")
    compare.add_argument(
        "--reexplain",
        choices=("none", "changed", "all"),
        help="explain target neurons afresh: none, changed (default: those judged changed or born) or all",
    )
    compare.add_argument(
        "--option", action="append", metavar="NAME=VALUE", help="a request option (repeatable)"
    )
    compare.add_argument("--budget-calls", type=int, metavar="N", help="stop after N LLM calls")
    compare.add_argument("--budget-usd", type=float, metavar="X", help="stop once X USD is spent")
    compare.add_argument("--dry-run", action="store_true", help="print what the comparison would cost")
    compare.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    compare.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")
    add_client_arguments(compare, default_url)
    compare.add_argument(
        "--timeout", type=float, default=None, help="give up waiting after this many seconds"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    compare.set_defaults(handler=handler)
