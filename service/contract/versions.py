"""Versions that are part of every job id, report variant and artifact key."""

from __future__ import annotations

PIPELINE_VERSION = "0.4.0"
"""Version of scan + classification + explanation + scoring; part of every job id and report (0.2.0:
reports carry random exemplars, simulated values of held-out records and unshaded exemplar images; 0.3.0:
text-model typing rule, quantile scale, text-disjoint held-out records, support-filtered domain flags,
Bills et al.'s explainer prompt, baseline token classes, batched/detection/fuzzing scorers; 0.3.1: the
baseline names digit tokens as numbers also where they continue words, rules `baseline-text-3`; 0.4.0:
a neuron is typed by its responding top samples (`unknown` only when none responds), the permutation method
is the within-sample peak-modality test, activation density, the rare-concept scale, every score against
chance, the `bills-2023` and `delphi` protocols)."""

SCAN_VERSION = "2"
"""Version of the scan artifact layout; part of the artifact key, so a change re-scans (2: every sample's
max activation per neuron, `sample_max`, which comparisons of two checkpoints correlate)."""

JOB_FORMAT_VERSION = "2"
"""Version of the jobs' form on the queue (task paths, the typed payload and result); part of every job id
and of nothing else, so after a change a request creates new jobs rather than joining ones a worker of the
new version cannot run, while stored reports and scans (keyed by the versions above) stay valid (2: tasks
under workers.process, one typed ``payload`` argument)."""
