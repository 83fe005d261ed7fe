"""Safety and liveness checkers (analysis/safety.py) and the equivocate fault
(sim/equivocation.py): honest producers keep safety at enough confirmations, an
equivocating producer breaks it at one confirmation exactly where worked by hand."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msgstorm.analysis.safety import conflicts, contested_rows
from msgstorm.history import read_history
from msgstorm.scenario import ScenarioError

NS = 1_000_000_000

# Five nodes all linked to each other, 10 ms a hop, no processing; one proof-of-stake
# producer (us-east-0) making a block every second, equivocating from 2.5 s for 1 s: only
# its block of the 3 s slot (height 3) is made twice.
EQUIVOCATION = """
[run]
name = "equivocation"
seed = 3
duration = "6s"
drain = "0s"

[network]
regions = ["us-east"]
nodes_per_region = 5
intra_region_latency = "10ms"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 4
peers = 4

[blocks]
interval = "1s"

[blocks.producers]
rule = "pos"
nodes = ["us-east-0"]
confirmations = {confirmations}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "5/s" }}

[[faults]]
kind = "equivocate"
node = "us-east-0"
at = "2.5s"
duration = "1s"
"""

# Proof-of-work producers racing over slow links, so forks happen.
HONEST = """
[run]
name = "honest"
seed = {seed}
duration = "60s"
drain = "0s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
processing = "50us"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 3
peers = 3

[blocks]
interval = "500ms"

[blocks.producers]
rule = "pow"
count = 6
confirmations = {confirmations}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "5/s" }}
"""


def _checks(result: Any) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in result.summary["checks"]}


def test_an_equivocating_producer_at_one_confirmation_breaks_safety_where_worked_by_hand(
        scenario_from, run_scenario) -> None:
    result: Any = run_scenario(scenario_from(EQUIVOCATION.format(confirmations=1)))
    history = read_history(result.run_dir)
    blocks = history.table("blocks").to_pylist()
    # Slots 1 s and 2 s: blocks 1, 2; the 3 s slot: block 3 and its conflicting twin 4, both
    # on block 2; the next slots build on block 3 (the producer's own view keeps it).
    at_three = [(row["block"], row["parent"], row["producer"]) for row in blocks if row["height"] == 3]
    assert at_three == [(3, 2, "us-east-0"), (4, 2, "us-east-0")]
    assert [row["parent"] for row in blocks if row["height"] == 4] == [3]
    assert sum(1 for row in blocks if row["height"] != 3) == len(blocks) - 2  # one height made twice
    # The producer forwards to us-east-2, -3 and -4 (its overlay edges): block 3 goes straight
    # to the first half (2 and 3), its twin to the rest (4), each 10 ms later; us-east-1 gets
    # block 3 a hop later, through 2 or 3. At one confirmation each finalises the block it
    # got first at once; at 4.01 s the block of the 4 s slot (on block 3) moves us-east-4 to
    # block 3's branch, and it finalises block 3 at height 3 again.
    edges = history.table("edges").to_pylist()
    assert [row["dst"] for row in edges if row["src"] == "us-east-0" and row["overlay"]] == [
        "us-east-2", "us-east-3", "us-east-4"]
    first = {(row["node"], row["block"]): row["t"] for row in history.table("block_arrivals").to_pylist()}
    hop = 10_000_000
    assert first["us-east-2", 3] == first["us-east-3", 3] == first["us-east-4", 4] == 3 * NS + hop
    finalized = [(row["t"], row["node"], row["block"]) for row in history.table("finalized").to_pylist()
                 if row["height"] == 3]
    assert sorted(finalized) == [
        (3 * NS, "us-east-0", 3),
        (3 * NS + hop, "us-east-2", 3), (3 * NS + hop, "us-east-3", 3), (3 * NS + hop, "us-east-4", 4),
        (3 * NS + 2 * hop, "us-east-1", 3),
        (4 * NS + hop, "us-east-4", 3),
    ]
    peers = [f"us-east-{i}" for i in range(1, 5)]  # the byzantine producer's own rows do not count
    assert conflicts(history) == {3: {3: peers, 4: ["us-east-4"]}}
    checks = _checks(result)
    assert checks["safety"]["verdict"] == "invalid"
    assert checks["safety"]["detail"] == (
        "conflicting blocks finalised at 1 height (byzantine: us-east-0): "
        "height 3: block 3 by us-east-1 us-east-2 us-east-3 us-east-4, block 4 by us-east-4")
    assert checks["liveness"]["verdict"] == "valid"


def test_the_same_equivocation_at_two_confirmations_is_safe(scenario_from, run_scenario) -> None:
    """The twin's nodes hold it only one deep before the next block moves them off it."""
    result: Any = run_scenario(scenario_from(EQUIVOCATION.format(confirmations=2)))
    assert conflicts(read_history(result.run_dir)) == {}
    assert _checks(result)["safety"]["verdict"] == "valid"


def test_an_equivocating_producer_with_one_gossip_peer_is_safe_at_one_confirmation(
        scenario_from, run_scenario) -> None:
    """docs/model.md: the twins split the honest nodes only when both reach one. With
    ``peers = 2`` (each node opens one connection) the producer's one overlay peer here is
    us-east-3: it gets block 3, and the twin, block 4, still made, reaches no node at all, so
    every honest node finalises block 3 at height 3 even at one confirmation."""
    text = EQUIVOCATION.format(confirmations=1).replace("peers = 4", "peers = 2")
    result: Any = run_scenario(scenario_from(text))
    history = read_history(result.run_dir)
    edges = history.table("edges").to_pylist()
    assert [row["dst"] for row in edges if row["src"] == "us-east-0" and row["overlay"]] == ["us-east-3"]
    assert [row["block"] for row in history.table("blocks").to_pylist() if row["height"] == 3] == [3, 4]
    arrivals = history.table("block_arrivals").to_pylist()
    assert sorted(row["node"] for row in arrivals if row["block"] == 3) == [f"us-east-{i}" for i in range(5)]
    assert [row for row in arrivals if row["block"] == 4] == []
    finalized = {(row["node"], row["block"]) for row in history.table("finalized").to_pylist() if row["height"] == 3}
    assert finalized == {(f"us-east-{i}", 3) for i in range(5)}
    assert _checks(result)["safety"]["verdict"] == "valid"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_honest_producers_with_long_confirmations_are_safe_in_every_seed(scenario_from, run_scenario,
                                                                          seed: int) -> None:
    deep: Any = run_scenario(scenario_from(HONEST.format(seed=seed, confirmations=6)))
    assert deep.summary["forks"]["blocks"]["stale"] > 0  # the network forks: safety is at stake
    checks = _checks(deep)
    assert checks["safety"]["verdict"] == "valid", checks["safety"]["detail"]
    assert checks["liveness"]["verdict"] == "valid"
    assert "longest gap between commits" in checks["liveness"]["detail"]
    # No one sequence across producers: the per-message checks judge inclusion, not a seq_no.
    assert checks["ordering"]["verdict"] == "valid"
    assert checks["committed-implies-sequenced"]["verdict"] == "valid", checks["committed-implies-sequenced"]


def test_one_confirmation_under_honest_forks_finalises_conflicting_blocks(scenario_from, run_scenario) -> None:
    """The checker can fail without a byzantine node: forks are final at depth one."""
    shallow: Any = run_scenario(scenario_from(HONEST.format(seed=1, confirmations=1)))
    checks = _checks(shallow)
    assert checks["safety"]["verdict"] == "invalid"
    assert "(byzantine" not in checks["safety"]["detail"]


def test_an_equivocating_node_must_be_a_producer(scenario_from) -> None:
    text = EQUIVOCATION.format(confirmations=1).replace('node = "us-east-0"\nat', 'node = "us-east-3"\nat')
    with pytest.raises(ScenarioError, match="not a producer"):
        scenario_from(text)


def test_an_equivocating_run_is_deterministic(scenario_from, run_scenario) -> None:
    text = EQUIVOCATION.format(confirmations=1)
    runs = [read_history(run_scenario(scenario_from(text)).run_dir) for _ in range(2)]  # type: ignore[attr-defined]
    for table in ("blocks", "block_arrivals", "finalized", "reorgs", "events", "messages"):
        assert runs[0].table(table).equals(runs[1].table(table)), table


def test_contested_rows_are_those_at_heights_with_two_blocks() -> None:
    """Only the heights where some nodes finalised different blocks come back, every row of
    them in row order (byzantine or not: the callers filter)."""
    finalized = pa.table({"t": [1, 2, 3, 4, 5, 6, 7], "node": ["a", "b", "a", "b", "c", "c", "a"],
                          "height": [1, 1, 2, 2, 2, 3, 3], "block": [1, 1, 2, 3, 2, 4, 4]})
    assert contested_rows(finalized) == (["a", "b", "c"], [2, 2, 2], [2, 3, 2])
    assert contested_rows(finalized.slice(0, 2)) == ([], [], [])


@pytest.mark.parametrize("stopped", [None, "interrupted", "cut off"])
def test_a_run_stopped_part_way_has_an_unknown_liveness_with_the_reason(tmp_path, stopped: str | None) -> None:
    """Blocks made every 250 ms from 0.25 s; the first commits at 0.4 s. Stopped by Ctrl-C at
    0.3 s, one block was made and none committed: not a chain that stopped committing, but a
    run that stopped before it could (unknown, saying so and what was seen). Run to its end
    with the same history, it is invalid: blocks made and none committed."""
    from test_analysis_history import MS, event, write_history

    from msgstorm.analysis.safety import check_liveness

    history = write_history(tmp_path, [], [event(250 * MS, "block_produced", height=1)], t_end=300 * MS,
                            interrupted=stopped == "interrupted")
    if stopped == "cut off":  # killed: its last run row is the one written at the start
        [part] = (tmp_path / "history" / "run").glob("part-*.parquet")
        row = pq.read_table(part)
        pq.write_table(row.set_column(row.schema.get_field_index("completed"), "completed",
                                      pa.array([False], type=row.schema.field("completed").type)), part)
        history = read_history(tmp_path)
        assert history.cut_off
    verdict = check_liveness(history)
    if stopped is None:
        assert (verdict.status, verdict.detail) == ("invalid", "1 blocks made and none committed")
    elif stopped == "interrupted":
        assert verdict.status == "unknown"
        assert verdict.detail == ("the run was interrupted at 0.3 s (Ctrl-C or SIGTERM): whether commits kept coming "
                                  "is not known; seen before the stop: 1 blocks made and none committed")
    else:
        assert verdict.status == "unknown" and verdict.detail.startswith("the run was cut off")


def test_liveness_words_a_day_long_gap_in_hours_and_a_short_one_in_exact_ms(tmp_path) -> None:
    """Commits at 13.162 s, 43,212.2 s and 43,225.2 s: the longest gap, 43,199 s, reads as
    "12 h" from "13.162 s" to "12 h 0 min 12.2 s" (it was "43199038.0 ms (from 13.162 s to
    43212.2 s)"); a gap below a second keeps its exact milliseconds, as summary.json's
    verdicts give them."""
    from test_analysis_history import MS, event, write_history

    from msgstorm.analysis.safety import check_liveness

    commits = [13_162 * MS, 43_212_200 * MS, 43_225_200 * MS]
    history = write_history(tmp_path / "day", [], [event(t, "block_committed", height=i + 1)
                                                   for i, t in enumerate(commits)], t_end=43_300_000 * MS)
    assert check_liveness(history).detail == ("3 commits, the first at 13.162 s; longest gap between commits 12 h "
                                              "(from 13.162 s to 12 h 0 min 12.2 s)")
    short = write_history(tmp_path / "short", [], [event(t, "block_committed", height=i + 1)
                                                   for i, t in enumerate([20 * MS, 40 * MS, 60 * MS])], t_end=100 * MS)
    assert check_liveness(short).detail == ("3 commits, the first at 0.02 s; longest gap between commits 20.0 ms "
                                            "(from 0.02 s to 0.04 s)")
