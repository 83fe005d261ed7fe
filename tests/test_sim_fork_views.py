"""The compiled pass over logged block connections (``sim/fork_views.py``) against the fork
chain's own Python (``ForkChain._connect``, ``_finalize``), on drawn block trees and logs.

Each drawn case is a tree of blocks (each on an earlier one), a few nodes and a log of
(node, block, time) rows in any order: the rule is the same whatever the order (the kernel
only logs a block whose parent is held, which neither side checks). Both must leave the same
tips, finalised heights and ``holds``, and write the same ``finalized`` and ``reorgs`` rows
in the same order. Output buffers too small for a row make the pass stop before it, and a
special node's row stops it as well; called again from there it must end where one call does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from msgstorm.sim.desync import DesyncTracker
from msgstorm.sim.fork_views import FIN_ROWS, REORG_ROWS, Rows, connect_logged
from msgstorm.sim.forks import ForkChain


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[int], int, int, list[tuple[int, int, int]]]:
    blocks = draw(st.integers(1, 25))
    parent = [0] + [draw(st.integers(0, b - 1)) for b in range(1, blocks + 1)]
    nodes = draw(st.integers(1, 5))
    confirmations = draw(st.integers(1, 4))
    rows = draw(st.lists(st.tuples(st.integers(0, nodes - 1), st.integers(1, blocks)), max_size=60))
    return parent, nodes, confirmations, [(node, block, 10 * (i + 1)) for i, (node, block) in enumerate(rows)]


def _heights(parent: list[int]) -> list[int]:
    height = [0]
    for block in range(1, len(parent)):
        height.append(height[parent[block]] + 1)
    return height


def _python(parent: list[int], nodes: int, confirmations: int, rows: list[tuple[int, int, int]]) -> dict[str, Any]:
    """The fork chain's views as its Python applies each row (``_connect``)."""
    chain = ForkChain.__new__(ForkChain)  # only the views: no scenario, network or writer
    chain.parent = list(parent)
    chain.block_height = _heights(parent)
    chain.holds = np.zeros((len(parent), nodes), dtype=np.uint8)
    chain.holds[0, :] = 1
    chain.tip = np.zeros(nodes, dtype=np.int64)
    chain.final_height = np.zeros(nodes, dtype=np.int64)
    chain.confirmations = confirmations
    chain.received, chain.waiting = set(), {}
    chain.reorgs, chain.finalized = Rows(REORG_ROWS), Rows(FIN_ROWS)
    chain.votes = None
    chain.canonical = [0]
    chain.desync = DesyncTracker(nodes, 10**9, 0, lambda *_: None)
    for node, block, t in rows:
        chain._connect(t, node, block)
    return {"tip": chain.tip.tolist(), "final": chain.final_height.tolist(), "holds": chain.holds.tolist(),
            "finalized": [tuple(row) for row in chain.finalized.take().T.tolist()],
            "reorgs": [tuple(row) for row in chain.reorgs.take().T.tolist()]}


def _compiled(parent: list[int], nodes: int, confirmations: int, rows: list[tuple[int, int, int]],
              fin_room: int, reorg_room: int, special: set[int] = frozenset()) -> tuple[dict[str, Any], int]:
    """The same through ``connect_logged``, called again after each stop (a special node's
    row applied by ``_python``'s rule in between, as ``ForkChain._connect_logged`` does);
    and how many calls it took."""
    log = np.array(rows, dtype=np.int64).reshape(-1, 3).T.copy()
    node_col, block_col, t_col = (np.ascontiguousarray(log[i]) for i in range(3))
    holds = np.zeros((len(parent), nodes), dtype=np.uint8)
    holds[0, :] = 1
    tip = np.zeros(nodes, dtype=np.int64)
    final = np.zeros(nodes, dtype=np.int64)
    parent_of = np.array(parent, dtype=np.int64)
    height_of = np.array(_heights(parent), dtype=np.int64)
    flags = np.zeros(nodes, dtype=np.uint8)
    flags[list(special)] = 1
    finalized: list[tuple[int, ...]] = []
    reorgs: list[tuple[int, ...]] = []
    fin_out = np.empty((FIN_ROWS, fin_room), dtype=np.int64)
    reorg_out = np.empty((REORG_ROWS, reorg_room), dtype=np.int64)
    start, calls = 0, 0

    def apply(start: int, stop: int, flags: np.ndarray) -> int:
        counts = np.zeros(2, dtype=np.int64)
        end = connect_logged(node_col[:stop], block_col[:stop], t_col[:stop], start, flags, tip, final, parent_of,
                             height_of, holds, confirmations, fin_out, reorg_out, counts)
        finalized.extend(tuple(row) for row in fin_out[:, :counts[0]].T.tolist())
        reorgs.extend(tuple(row) for row in reorg_out[:, :counts[1]].T.tolist())
        return int(end)

    while start < len(rows):
        stop = apply(start, len(rows), flags)
        calls += 1
        if stop < len(rows) and flags[node_col[stop]]:
            # That row alone, as the fork chain applies it in Python (the same rule).
            assert apply(stop, stop + 1, np.zeros(nodes, dtype=np.uint8)) == stop + 1
            stop += 1
        assert stop > start, "each call applies a row or stops at a special one"
        start = stop
    return {"tip": tip.tolist(), "final": final.tolist(), "holds": holds.tolist(), "finalized": finalized,
            "reorgs": reorgs}, calls


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_the_compiled_pass_connects_as_the_python_rule(case: tuple[list[int], int, int, list[tuple[int, int, int]]]) -> None:
    parent, nodes, confirmations, rows = case
    reference = _python(parent, nodes, confirmations, rows)
    compiled, _ = _compiled(parent, nodes, confirmations, rows, fin_room=len(rows) + len(parent),
                            reorg_room=len(rows) + 1)
    assert compiled == reference


@settings(max_examples=60, deadline=None)
@given(_cases(), st.sets(st.integers(0, 4), max_size=2))
def test_stopping_and_starting_again_changes_nothing(case: tuple[list[int], int, int, list[tuple[int, int, int]]],
                                                     special: set[int]) -> None:
    """Buffers with room for one tall branch and one reorg make the pass stop often; special
    nodes stop it too; every stop resumes where it left off."""
    parent, nodes, confirmations, rows = case
    reference = _python(parent, nodes, confirmations, rows)
    tallest = max(_heights(parent))
    compiled, calls = _compiled(parent, nodes, confirmations, rows, fin_room=tallest + 1, reorg_room=1,
                                special={node for node in special if node < nodes})
    assert compiled == reference
    assert calls >= (1 if rows else 0)


def test_a_reorg_and_finalising_on_paper() -> None:
    """Blocks 1-2-3 and a fork 1-4-5-6 at one node, two confirmations: the view goes to 3,
    then 6 once it is higher (a reorg of depth 2: blocks 2 and 3 left), finalising heights 1,
    2 on the first branch and then 2, 3 again on the second."""
    parent = [0, 0, 1, 2, 1, 4, 5]
    rows = [(0, 1, 10), (0, 2, 20), (0, 3, 30), (0, 4, 40), (0, 5, 50), (0, 6, 60)]
    compiled, _ = _compiled(parent, 1, 2, rows, fin_room=20, reorg_room=4)
    assert compiled["tip"] == [6]
    assert compiled["reorgs"] == [(60, 0, 2, 3, 6)]
    assert compiled["finalized"] == [(20, 0, 1, 1), (30, 0, 2, 2), (60, 0, 2, 4), (60, 0, 3, 5)]
    assert compiled == _python(parent, 1, 2, rows)
