"""The quorum-bound table after a sweep (sweep/quorum.py): per point, byzantine stake against
1/3 and the seeds in which safety and liveness held, read from a hand-built sweep table."""

from __future__ import annotations

import pyarrow as pa

from msgstorm.sweep.quorum import quorum_lines, quorum_points


def _table() -> pa.Table:
    # Four points of 7 equal validators (f = 0, 2, 3, 4), two seeds each; a failed run (no
    # metrics) at point 1 is left out.
    rows = [
        (0, 0, 0.0, 1, 1), (0, 0, 0.0, 1, 1),
        (1, 2, 2 / 7, 1, 0), (1, 2, 2 / 7, 1, 1), (1, None, None, None, None),
        (2, 3, 3 / 7, 0, 1), (2, 3, 3 / 7, 1, 1),
        (3, 4, 4 / 7, 0, 0), (3, 4, 4 / 7, 0, 1),
    ]
    return pa.table({
        "point": [r[0] for r in rows],
        "finality.validators": [None if r[1] is None else 7.0 for r in rows],
        "finality.byzantine": [None if r[1] is None else float(r[1]) for r in rows],
        "finality.byzantine_stake": [r[2] for r in rows],
        "finality.safe": [None if r[3] is None else float(r[3]) for r in rows],
        "finality.live": [None if r[4] is None else float(r[4]) for r in rows],
    })


def test_points_count_the_seeds_that_held() -> None:
    points = quorum_points(_table())
    assert [(p.point, p.byzantine, p.seeds, p.safe, p.live, p.within_bound) for p in points] == [
        (0, 0.0, 2, 2, 2, True), (1, 2.0, 2, 2, 1, True), (2, 3.0, 2, 1, 2, False), (3, 4.0, 2, 0, 1, False)]


def test_the_lines_say_where_each_property_first_broke_against_the_bound() -> None:
    lines = quorum_lines(quorum_points(_table()))
    assert lines[0] == "quorum bound: byzantine stake < 1/3 (f < n/3 = 2.33 of 7 equal validators)"
    assert lines[3].split() == ["2", "0.286", "yes", "2/2", "1/2"]
    assert lines[4].split() == ["3", "0.429", "no", "1/2", "2/2"]
    assert lines[-2] == "safety first broke at f = 3 (stake 0.429), beyond the bound"
    assert lines[-1] == "liveness first broke at f = 2 (stake 0.286), within the bound"


def test_a_sweep_without_finality_by_votes_has_no_lines() -> None:
    assert quorum_points(pa.table({"point": [0], "throughput_per_s": [1.0]})) == []
    assert quorum_lines([]) == []
