"""What `neuronlens explain` says before it runs a request: a dry run's estimate in words, and a notice when
the request's options select a scan that is not stored (a rescan of minutes that the user did not expect
from, say, `--option seed=1`)."""

from __future__ import annotations

from typing import Any

from neuronlens import Client, PipelineOptions
from neuronlens._contract import SCAN_OPTIONS, CostEstimate, option_labels


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


def scan_settings(request: dict[str, Any]) -> list[str]:
    """What in ``request`` selects a scan other than the default one: a non-default scan option
    (`SCAN_OPTIONS`: ``option seed=1``), a named hook or probe set (``--dataset text-probe-v1``)."""
    options = PipelineOptions.model_validate(request.get("options") or {}).non_default()
    chosen = {name: value for name, value in options.items() if name in SCAN_OPTIONS}
    named = [f"--{name} {request[name]}" for name in ("hook", "dataset") if request.get(name) is not None]
    return [f"option {label}" for label in option_labels(chosen)] + named


def rescan_notice(client: Client, request: dict[str, Any]) -> str | None:
    """When ``request`` selects another scan than the default one and that scan is not stored, what will
    happen, in words, before the (minutes long) scan starts; None otherwise. The dry run (nothing
    enqueued) tells which requested layers have no stored scan for these settings."""
    settings = scan_settings(request)
    if not settings:
        return None
    layers = client.estimate(**request).scan.layers_to_scan
    if not layers:
        return None
    which = f"layer {layers[0]}" if len(layers) == 1 else f"layers {', '.join(map(str, layers))}"
    verb = "changes" if len(settings) == 1 else "change"
    return (
        f"{' and '.join(settings)} {verb} the scan: {which} of {request['model']} will be rescanned "
        "(no stored scan for these settings)"
    )
