"""The chance level on the viewer's pages (docs/method.md#chance-level): a neuron's score against the
null of other neurons' explanations, and a layer's share of neurons explained beyond chance."""

from __future__ import annotations

from collections.abc import Sequence

from service.contract import NeuronReport, NeuronSummary


def chance_html(report: NeuronReport) -> str:
    """The score against chance: the null of other neurons' explanations (docs/method.md#chance-level)."""
    chance = report.simulation.chance
    if chance is None:
        return ""
    if chance.beyond_chance is None:
        verdict = "no verdict (the score is undefined, or fewer than 2 null explanations)"
    else:
        verdict = f"<strong>{'beyond' if chance.beyond_chance else 'not beyond'} chance</strong>"
    p = f"p = {chance.p_value:.2g}, z = {chance.z:.2f}; " if chance.p_value is not None and chance.z else ""
    return (
        f'<p id="chance">{verdict} <span class="muted">({p}α = {chance.alpha:g}; null: the explanations '
        f"of {chance.k} other neurons of the layer ({', '.join(map(str, chance.donors))}) on these "
        f"held-out records, r mean {chance.mean:.3f}, sd {chance.sd:.3f}; {chance.n_undefined} of "
        f"{chance.k} undefined, counted as 0)</span></p>"
    )


def chance_counts(rows: Sequence[NeuronSummary]) -> tuple[int, int, int]:
    """(beyond chance, with a chance verdict, all) over a layer's stored neurons."""
    verdicts = [row.beyond_chance for row in rows if row.beyond_chance is not None]
    return sum(verdicts), len(verdicts), len(rows)


def chance_line(rows: Sequence[NeuronSummary]) -> str:
    """The layer's share of neurons explained beyond chance (docs/method.md#chance-level)."""
    beyond, judged, total = chance_counts(rows)
    if not judged:
        return " No score was tested against chance (`chance_explanations` 0, or undefined scores)."
    share = 100 * beyond / total
    return (
        f' <span id="beyond-chance"><b>{beyond} of {total} neurons beyond chance</b> ({share:.0f}%; '
        f"{judged} with a defined score tested against the explanations of other neurons of the layer, "
        f"{total - judged} without a verdict).</span>"
    )
