"""Round-based consensus's summary section (analysis/consensus.py) and its rows in the
terminal and report.html (report/consensus.py), on hand-built heights tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from test_analysis_history import S, write_history

from msgstorm.analysis.consensus import consensus_summary
from msgstorm.analysis.summary import analyse
from msgstorm.analysis.summary_chain import Consensus
from msgstorm.history.reader import History
from msgstorm.report.consensus import consensus_rows, consensus_section

MS = S // 1000
ROUNDS = "heights / rounds a height took mean / max"


def _history(tmp_path: Path, commits: list[tuple[str, int, int, int]]) -> History:
    """``commits``: (node, height, round, t_committed) rows, each committing block = height."""
    heights = [{"node": node, "height": height, "round": round_, "proposer": "a", "t_committed": t,
                "interval_ns": None} for node, height, round_, t in commits]
    finalized = [{"t": t, "node": node, "height": height, "block": height} for node, height, _, t in commits]
    return write_history(tmp_path, tables={"heights": heights, "finalized": finalized}, t_end=10 * S)


def _section(history: History) -> dict[str, Any]:
    section = consensus_summary(history)
    assert section is not None
    return section


def test_rounds_are_counted_in_one_unit_the_rounds_a_height_took(tmp_path: Path) -> None:
    """Heights 1 to 4 first committed in rounds 0, 2, 0, 1: they took 1, 3, 1 and 2 rounds
    (round 0 is a height's first), mean 7 / 4 = 1.75, most 3; two took more than one. c's
    commit of height 4 in round 3, after a's and b's in round 1, is not the height's commit
    (the first is): 3 stays the most."""
    history = _history(tmp_path, [
        ("a", 1, 0, 1 * S), ("b", 1, 0, 1 * S + 100 * MS),
        ("a", 2, 2, 5 * S), ("b", 2, 2, 5 * S + 200 * MS),
        ("b", 3, 0, 6 * S), ("a", 3, 0, 6 * S + 100 * MS),
        ("a", 4, 1, 8 * S), ("b", 4, 1, 8 * S + 50 * MS), ("c", 4, 3, 9 * S)])
    section = _section(history)
    assert (section["rounds_mean"], section["rounds_max"], section["heights_above_round_0"]) == (1.75, 3, 2)
    rows = dict(consensus_rows(Consensus.model_validate(section)))
    assert rows[ROUNDS] == "4 / 1.75 / 3 (2 above round 0)"


def test_heights_committed_in_their_first_round_took_one_round_each_mean_and_most(tmp_path: Path) -> None:
    """Every height committed in round 0: mean 1 and most 1, where the mean counted rounds
    (1) and the most gave a round's index (0) before they were one unit. The terminal row
    and report.html's consensus table say so in the label."""
    history = _history(tmp_path, [("a", h, 0, h * S) for h in range(1, 6)])
    summary = analyse(history).result
    consensus = summary.consensus
    assert consensus is not None
    assert (consensus.rounds_mean, consensus.rounds_max, consensus.heights_above_round_0) == (1.0, 1, 0)
    assert dict(consensus_rows(consensus))[ROUNDS] == "5 / 1 / 1 (0 above round 0)"
    [(_, _, page)] = consensus_section(history, summary)
    assert f"<td>{ROUNDS}</td><td>5 / 1 / 1 (0 above round 0)</td>" in page


def test_the_nodes_table_puts_the_node_furthest_behind_first_then_the_rest_by_number(tmp_path: Path) -> None:
    """Twelve nodes n-0 to n-11 commit heights 1 to 10 together, a second apart; n-9 stops after height 3
    and catches up at 10.5 s: 7 heights behind at most. Before, the rows came in the order of
    their names as text (n-0, n-1, n-10, n-11, n-2, ...), the crashed node ninth of twelve."""
    commits = [(f"n-{node}", height, 0, height * S) for node in range(12) for height in range(1, 11)
               if node != 9 or height <= 3]
    commits += [("n-9", height, 0, 10 * S + 500 * MS + height * MS) for height in range(4, 11)]
    history = _history(tmp_path, commits)
    summary = analyse(history).result
    [(_, _, page)] = consensus_section(history, summary)
    table = page[page.index('id="consensus-nodes"'):]
    rows = re.findall(r"<tr><td>([^<]*)</td>.*?<td class=\"num\">([^<]*)</td><td class=\"num\">([^<]*)</td></tr>",
                      table[:table.index("</table>")])
    lags = {node: summary.consensus.per_node[node].lag_max for node, *_ in rows} if summary.consensus else {}
    assert [node for node, *_ in rows] == ["n-9", *(f"n-{node}" for node in range(12) if node != 9)]
    assert lags["n-9"] == 7 and max(lag for node, lag in lags.items() if node != "n-9") == 0
