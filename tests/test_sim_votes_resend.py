"""Votes sent again when a partition heals (blocks.producers.resend_votes, sim/votes.py): the
nodes cut off with one validator never finalise the heights the other side finalised
during the cut (its votes were lost to the cut) unless the votes are sent again; then they
finalise exactly those heights as soon as the links are back."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sim_runs import four_validators

from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history

NS = 1_000_000_000

# Four validators (a quorum is 3 of 4) on six nodes; us-east-0 (a validator) and us-east-2
# are cut off from the rest from 2.5 s to 4.5 s; the other three validators keep a quorum.
FAULTS = """
[[faults]]
kind = "partition"
groups = [["us-east-0", "us-east-2"]]
at = "2.5s"
duration = "2s"
"""
CUT_OFF = ("us-east-0", "us-east-2")
HEAL = 4.5 * NS


def _network(producers: str) -> str:
    return four_validators("resend", 5, producers) + FAULTS


def _finalized(history: Any) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for row in history.table("finalized").to_pylist():
        out[row["node"]][row["height"]] = row["t"]
    return out


def test_votes_lost_to_a_partition_are_sent_again_when_it_heals(scenario_from, run_scenario) -> None:
    plain = read_history(run_scenario(scenario_from(_network(""))).run_dir)
    resent = read_history(run_scenario(scenario_from(_network("resend_votes = true"))).run_dir)
    # The heights of the blocks the majority side made (and finalised) during the cut.
    during = {row["height"] for row in plain.table("blocks").to_pylist()
              if 2.5 * NS < row["t_produced"] < HEAL and row["producer"] not in CUT_OFF}
    assert during
    majority = _finalized(plain)["eu-west-0"]
    assert during <= set(majority)
    without, with_resend = _finalized(plain), _finalized(resent)
    for node in CUT_OFF:
        assert not during & set(without[node]), node  # lost for good
        assert during <= set(with_resend[node]), node
        # Right after the heal: the votes come back one link away (5 ms inside us-east, 10 ms across).
        assert all(HEAL <= with_resend[node][h] <= HEAL + 20_000_000 for h in during), with_resend[node]
    # The rest of the run is the same, and safety holds either way.
    for node in ("eu-west-0", "eu-west-1", "eu-west-2", "us-east-1"):
        assert with_resend[node] == without[node], node
    assert {c["name"]: c["verdict"] for c in analyse(resent).summary["checks"]}["safety"] == "valid"


def test_resend_votes_is_written_only_when_set(scenario_from) -> None:
    assert "resend_votes" not in scenario_from(_network("")).model_dump(mode="json")["blocks"]["producers"]
    assert scenario_from(_network("resend_votes = true")).blocks.producers.resend_votes is True
