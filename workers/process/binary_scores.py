"""Detection and fuzzing scores of the neurons of an explain job (Paulo et al. 2024; docs/method.md), as
the request's scorers ask: the balanced accuracy of a judge over each neuron's held-out records (and under
protocol `delphi`, Delphi's examples, marks and metrics: workers/simulate/delphi.py)."""

from __future__ import annotations

from service.contract import BinaryScore
from workers.analysis.assemble import PreparedNeuron, ReportContext
from workers.llm.pool import map_concurrently
from workers.simulate.base import Simulator
from workers.simulate.binary import DETECTION_PROMPT_VERSION, FUZZING_PROMPT_VERSION, Judge, binary_score
from workers.simulate.delphi import delphi_score

BINARY_CONCURRENCY = 4
"""Neurons whose detection/fuzzing requests run at once (each neuron's batches run in turn)."""


def binary_scores(
    context: ReportContext,
    prepared: list[PreparedNeuron],
    explanations: list[str],
    judge: Judge | None,
    simulator: Simulator,
) -> list[dict[str, BinaryScore]]:
    """Detection and fuzzing scores per neuron, as requested (neurons of the chunk run concurrently)."""
    kinds = [kind for kind in ("detection", "fuzzing") if kind in context.options.scorers]
    if judge is None or not kinds:
        return [{} for _ in prepared]
    versions = {"detection": DETECTION_PROMPT_VERSION, "fuzzing": FUZZING_PROMPT_VERSION}
    is_llm = simulator.backend != "baseline"

    def one(job: tuple[PreparedNeuron, str]) -> dict[str, BinaryScore]:
        item, text = job
        top = [r for r, is_top in zip(item.heldout, item.heldout_is_top, strict=True) if is_top]
        random = [r for r, is_top in zip(item.heldout, item.heldout_is_top, strict=True) if not is_top]
        version = {kind: versions[kind] if is_llm else None for kind in kinds}
        if context.options.protocol == "delphi":
            return {kind: delphi_score(kind, judge, text, top, random, version[kind]) for kind in kinds}
        return {
            kind: binary_score(kind, judge, text, top, random, context.options.seed, version[kind])
            for kind in kinds
        }

    jobs = list(zip(prepared, explanations, strict=True))
    return map_concurrently(one, jobs, BINARY_CONCURRENCY) if is_llm else [one(job) for job in jobs]
