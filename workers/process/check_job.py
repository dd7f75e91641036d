"""The check job's entry point, called by the RQ task (workers/process/tasks.py) with a resolved check.

`check_pins` re-scores every pinned explanation on its neuron of the model's scanned layers (simulation
only, workers/analysis/rescore.py, with the check's simulator) and checks the pin
(workers/analysis/pin_checks.py). The offline baseline re-scores a layer's pins in one call; the `openai`
simulator pin by pin, so a budget that runs out keeps the pins already scored (the rest fail, "not
scored").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.contract import PinResult
from workers.analysis.pin_checks import check_pin, unscored_pin
from workers.analysis.rescore import rescore
from workers.llm.usage import BudgetExhausted
from workers.process.backends import make_simulator
from workers.process.payloads import CheckJob
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import open_context

BUDGET_SPENT = "the check's budget ran out before this pin"
"""Why a pin the budget left unscored failed."""


@dataclass
class CheckOutcome:
    """Every pin's result (in the request's order) and whether the budget stopped the re-scoring."""

    results: list[PinResult]
    budget_exhausted: bool


def check_pins(
    runtime: WorkerRuntime, check: CheckJob, on_pin: Callable[[int], None] | None = None
) -> CheckOutcome:
    """Re-score and check every pin of ``check``, layer by layer; ``on_pin`` gets the count done so far."""
    request = check.request
    assert request.simulator is not None  # parse_check_job checked it
    simulator = make_simulator(
        request.simulator, runtime.llm, endpoint=request.endpoint, images=runtime.probe_images(check.dataset)
    )
    pins = request.pins
    # What a pin's default name starts with: the model, and the dictionary when the pins are its latents.
    label = request.model if request.units is None else f"{request.model} {request.units}"
    by_position: dict[int, PinResult] = {}
    exhausted = False
    for layer in request.layer_list():
        positions = [i for i, pin in enumerate(pins) if pin.layer == layer]
        context = None
        groups = [positions] if request.simulator == "baseline" else [[i] for i in positions]
        for group in groups:
            if not exhausted:
                if context is None:
                    context = open_context(
                        runtime, check.model, check.dataset, check.point.id, layer, request.options
                    )
                try:
                    scored = rescore(
                        context,
                        [pins[i].neuron for i in group],
                        [pins[i].explanation for i in group],
                        simulator,
                    )
                except BudgetExhausted:
                    exhausted = True
                else:
                    by_position.update(
                        {i: check_pin(pins[i], label, item) for i, item in zip(group, scored, strict=True)}
                    )
            if exhausted:
                by_position.update({i: unscored_pin(pins[i], label, BUDGET_SPENT) for i in group})
            if on_pin is not None:
                on_pin(len(by_position))
    return CheckOutcome([by_position[i] for i in range(len(pins))], exhausted)
