"""Round-based BFT consensus in the terminal summary and in report.html.

Place in the pipeline: report, read from the typed ``consensus`` section of the summary
(``analysis/consensus.py``) and, for the per-height timeline, from the history's ``heights``
table. Terminal: rounds, block interval, height lag, safety and liveness, the failure
conditions that fired. Page: the same as a table, one row per node (commits, rounds above
0, lag, interval, proposed; the furthest behind first), and the timeline of the first ``TIMELINE_HEIGHTS`` heights
(round, proposer, interval, nodes that committed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from msgstorm.analysis.consensus import height_rows
from msgstorm.analysis.summary_chain import Consensus, ConsensusNode
from msgstorm.analysis.summary_model import Summary
from msgstorm.history.reader import History
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number

__all__ = ["TIMELINE_HEIGHTS", "consensus_rows", "consensus_section", "worst_first"]

TIMELINE_HEIGHTS = 200


def consensus_rows(consensus: Consensus) -> list[tuple[str, str]]:
    """The terminal summary's rows."""
    interval = consensus.interval_ms
    at = consensus.conflicts_at
    return [
        # Rounds a height took (1: its first round, round 0), both numbers in that one unit.
        ("heights / rounds a height took mean / max", f"{number(consensus.height)} / {number(consensus.rounds_mean)} / "
                                                      f"{number(consensus.rounds_max)} "
                                                      f"({number(consensus.heights_above_round_0)} above round 0)"),
        ("block interval p50 / p99 / max", f"{duration_ms(interval.p50)} / {duration_ms(interval.p99)} / "
                                           f"{duration_ms(interval.max)}"),
        ("height lag max / bound", f"{number(consensus.lag_max)} / {number(consensus.lag_bound)}"),
        ("conflicting heights / longest without commit",
         f"{number(consensus.conflicting_heights)}"
         + (f" (at {', '.join(map(str, at))})" if at else "")
         + f" / {duration_ms(consensus.longest_without_commit_ms)}"),
        ("consensus conditions", ", ".join(consensus.conditions) or "none fired"),
    ]


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """A node's name as it sorts for people: ``us-east-2`` before ``us-east-10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def worst_first(per_node: Mapping[str, ConsensusNode]) -> list[tuple[str, ConsensusNode]]:
    """The nodes by how far they fell behind, the most first (then the fewest commits), the
    rest by name with its numbers as numbers: a node that crashed heads the table."""
    return sorted(per_node.items(), key=lambda item: (-item[1].lag_max, item[1].committed, _natural(item[0])))


def _num(value: object) -> str:
    return f'<td class="num">{esc(number(value))}</td>'


def consensus_section(history: History, summary: Summary) -> list[tuple[str, str, str]]:
    """The section "Consensus" of a run with a heights table."""
    consensus = summary.consensus
    if consensus is None:
        return []
    head = table(["metric", "value"], [[esc(label), esc(text)] for label, text in consensus_rows(consensus)],
                 attrs='id="consensus-table"')
    nodes = table(["node", "committed", "last height", "above round 0", "lag max", "interval p50 (ms)", "proposed"],
                  [[esc(node), _num(row.committed), _num(row.height), _num(row.above_round_0), _num(row.lag_max),
                    _num(row.interval_p50_ms), _num(row.proposed)] for node, row in worst_first(consensus.per_node)],
                  attrs='id="consensus-nodes"')
    first: dict[int, dict[str, Any]] = {}
    committed: dict[int, int] = {}
    for row in height_rows(history):
        height = row["height"]
        committed[height] = committed.get(height, 0) + 1
        known = first.get(height)
        if known is None or row["t_committed"] < known["t_committed"]:
            first[height] = row
    timeline_rows = []
    previous: int | None = None
    for height in sorted(first)[:TIMELINE_HEIGHTS]:
        row = first[height]
        t = int(row["t_committed"])
        interval = None if previous is None else (t - previous) / 1e6
        previous = t
        timeline_rows.append([_num(height), _num(row["round"]), esc(str(row["proposer"])), _num(t / 1e9),
                              _num(interval), _num(committed[height])])
    timeline = table(["height", "round", "proposer", "committed at (s)", "interval (ms)", "nodes committed"],
                     timeline_rows, attrs='id="consensus-timeline"')
    note = (f'<p class="note">Each height\'s first commit; the first {TIMELINE_HEIGHTS} heights.</p>'
            if len(first) > TIMELINE_HEIGHTS else "")
    return [("consensus", "Consensus: rounds, interval, lag", head + nodes + note + timeline)]
