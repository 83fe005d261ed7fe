"""The report's section "Safety, liveness and integrity": verdicts and where chains diverge.

Place in the pipeline: a section of ``report.html`` (``report/html.py``), read from the
history and its summary only (its typed ``checks``, ``integrity`` and ``finality``). It shows the ``safety``, ``liveness`` and (with
``[security]`` or a tamper/replay adversary) ``integrity`` verdicts side by side; under
finality by votes, the byzantine voters and their stake against the bound a two-thirds
quorum implies; and a per-node chain view at the heights where nodes finalised different
blocks (the ``finalized`` table): one row per node, one column per such height, each cell
the block or blocks the node finalised there, byzantine nodes marked. A run without
producers across the nodes finalises nothing: no section.
"""

from __future__ import annotations

from collections import defaultdict

from msgstorm.analysis.safety import contested_rows, dishonest_nodes
from msgstorm.analysis.summary_model import Integrity, Summary
from msgstorm.history.reader import History
from msgstorm.report.page import esc, table

__all__ = ["CHAIN_VIEW_HEIGHTS", "divergent_heights", "safety_section"]

CHAIN_VIEW_HEIGHTS = 12  # divergent heights the chain view shows (the first ones)


def divergent_heights(history: History) -> dict[int, dict[str, list[int]]]:
    """Heights at which nodes (any, byzantine too) finalised different blocks: height ->
    node -> the blocks it finalised there (ascending), heights ascending."""
    finalized = history.table("finalized")
    by_height: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for node, height, block in zip(*contested_rows(finalized), strict=True):
        by_height[height][node].add(block)
    return {height: {node: sorted(blocks) for node, blocks in sorted(nodes.items())}
            for height, nodes in sorted(by_height.items())
            if len(set().union(*nodes.values())) > 1}


def _integrity_verdict(integrity: Integrity | None) -> tuple[str, str] | None:
    if integrity is None:
        return None
    forged = integrity.tampered + integrity.replayed
    verdict = "invalid" if integrity.accepted else "valid"
    return verdict, f"{integrity.accepted:,} of {forged:,} tampered or replayed messages accepted"


def safety_section(history: History, summary: Summary) -> list[tuple[str, str, str]]:
    """The section, from the history and the typed summary; none when nothing was finalised."""
    if history.table("finalized").num_rows == 0:
        return []
    checks = {check.name: check for check in summary.checks}
    rows = []
    for name in ("safety", "liveness"):
        check = checks.get(name)
        if check is not None:
            rows.append([esc(name), f'<td data-verdict="{esc(check.verdict)}">{esc(check.verdict)}</td>',
                         esc(check.detail)])
    integrity = _integrity_verdict(summary.integrity)
    if integrity is not None:
        rows.append(["integrity", f'<td data-verdict="{integrity[0]}">{integrity[0]}</td>', esc(integrity[1])])
    parts = [table(["check", "verdict", "detail"], rows, attrs='id="safety-verdicts"')]
    finality = summary.finality
    if finality:
        bound = "below" if finality.within_bound else "not below"
        parts.append(f'<p id="quorum-bound">Finality by votes: {finality.byzantine} byzantine voter(s) of '
                     f'{finality.validators} validators hold {finality.byzantine_stake:.3f} of the stake, '
                     f"{bound} the 1/3 a two-thirds quorum tolerates (f &lt; n/3).</p>")
    diverged = divergent_heights(history)
    if not diverged:
        parts.append('<p class="note" id="chain-view-none">Every node that finalised a height finalised '
                     "the same block there.</p>")
        return [("safety", "Safety, liveness and integrity", "".join(parts))]
    byzantine = dishonest_nodes(history)
    heights = list(diverged)[:CHAIN_VIEW_HEIGHTS]
    nodes = [entry["name"] for entry in history.nodes]
    view_rows = []
    for node in nodes:
        label = f"{node} (byzantine)" if node in byzantine else node
        cells = [esc(label)]
        for height in heights:
            blocks = diverged[height].get(node, [])
            text = " ".join(str(b) for b in blocks) if blocks else "—"
            cells.append(f'<td class="num" data-node="{esc(node)}" data-height="{height}">{esc(text)}</td>')
        view_rows.append(cells)
    more = len(diverged) - len(heights)
    parts.append(f"<p>Where nodes diverge: the block(s) each node finalised at the {len(diverged)} height(s) at "
                 "which nodes finalised different blocks" + (f" (the first {len(heights)} shown)" if more else "")
                 + "; two blocks in one cell: the node finalised both.</p>")
    parts.append(table(["node", *(f"height {h}" for h in heights)], view_rows, attrs='id="chain-view"'))
    return [("safety", "Safety, liveness and integrity", "".join(parts))]
