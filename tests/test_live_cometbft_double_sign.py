"""A byzantine validator on real CometBFT validators: a second node signing with one
validator's key (the ``double_sign`` fault) makes it double-sign, and the evidence the chain
commits is in the history, equal to what the validators' own block stores hold."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from conftest import cometbft_inspect, require_cometbft

from msgstorm.live.chain.comet_target import evidence_detail
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.errors import ScenarioError

SCENARIO = """
target = "cometbft"
[run]
name = "double-sign"
seed = 5
duration = "{duration}"
drain = "5s"
[blocks]
interval = "300ms"
[live]
start_timeout = "30s"
[live.cometbft]
validators = 4
entry = 0
[[agents]]
name = "a"
arrival = {{ process = "poisson", rate = "30/s" }}
size = "40B"
keys = 100
"""

FAULT = '[[faults]]\nkind = "double_sign"\nat = "{at}"\nduration = "{duration}"\nnode = "{node}"\n'

# A CometBFT block's evidence item as its RPC gives it (the shape of v0.38's JSON), trimmed.
ITEM = {"type": "tendermint/DuplicateVoteEvidence", "value": {
    "vote_a": {"type": 1, "height": "14", "round": 0, "block_id": {"hash": ""},
               "validator_address": "256CBD64EE1E07FB18974EBC99C64B04556495A9", "validator_index": 0},
    "vote_b": {"type": 1, "height": "14", "round": 0, "block_id": {"hash": "996D6CE6"},
               "validator_address": "256CBD64EE1E07FB18974EBC99C64B04556495A9", "validator_index": 0},
    "total_voting_power": "40", "validator_power": "10"}}


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table, format="parquet").to_table().to_pylist()  # type: ignore[no-any-return]


def test_an_evidence_item_says_its_type_validator_and_the_votes_height_and_round() -> None:
    assert evidence_detail(ITEM) == {"type": "DuplicateVoteEvidence",
                                     "address": "256CBD64EE1E07FB18974EBC99C64B04556495A9",
                                     "vote_height": 14, "round": 0, "vote_type": 1}
    assert evidence_detail({"type": "x/Other", "value": {}}) == {
        "type": "Other", "address": None, "vote_height": None, "round": None, "vote_type": None}


def test_a_double_sign_is_refused_where_it_cannot_act_naming_file_line_and_field() -> None:
    base = SCENARIO.format(duration="4s")
    with pytest.raises(ScenarioError, match=r"c\.toml:\d+: faults\[0\]\.node: unknown validator 'validator-7'; "
                                            r"target 'cometbft' starts \['validator-0', "):
        parse_scenario(base + FAULT.format(at="1s", duration="1s", node="validator-7"), source="c.toml")
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.kind: target 'nats' cannot run a second signer with a "
                                            r"validator's key, which a double_sign fault needs"):
        parse_scenario(base.replace('target = "cometbft"', 'target = "nats"').replace("entry = 0", "")
                       + FAULT.format(at="1s", duration="1s", node="validator-0"), source="c.toml")
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.kind: a 'double_sign' fault applies to live targets only"):
        parse_scenario(base.replace('target = "cometbft"', 'target = "sim"').replace("entry = 0", "")
                       + FAULT.format(at="1s", duration="1s", node="validator-0"), source="c.toml")
    scenario = parse_scenario(base + FAULT.format(at="1s", duration="2s", node="validator-2"), source="c.toml")
    assert scenario.faults[0].node == "validator-2"  # type: ignore[union-attr]


def _store_evidence(binary: str, home: Path) -> list[tuple[int, str, int]]:
    """A stopped validator's own block store, read with ``cometbft inspect``: (height, the
    address named, the votes' height) of each evidence item of each block."""
    with cometbft_inspect(binary, home) as (call, top):
        found = []
        for height in range(1, top + 1):
            for item in call("block", height=str(height))["block"]["evidence"]["evidence"] or []:
                vote = item["value"]["vote_a"]
                found.append((height, vote["validator_address"], int(vote["height"])))
        return found


@pytest.mark.slow
def test_a_second_signer_makes_its_validator_double_sign_and_the_committed_evidence_is_the_stores(
        tmp_path: Path) -> None:
    binary = require_cometbft()
    from msgstorm.runner import run

    # The second signer syncs the chain first (about 4 s even on an idle machine), then lags a
    # few heights before its votes meet the validator's: on a loaded machine it has taken 9 s
    # and more, so the fault lasts 16 s.
    text = SCENARIO.format(duration="21s") + FAULT.format(at="2s", duration="16s", node="validator-1")
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start = next(e["t"] for e in events if e["kind"] == "fault_start")
    end = next(e["t"] for e in events if e["kind"] == "fault_end")
    evidence = [e for e in events if e["kind"] == "evidence"]
    assert evidence, "no evidence committed while a second signer ran"
    # Every item names validator-1 (the key the second signer held), for duplicate votes at a
    # height after the one under way when it started (it had the chain to sync first), and
    # is committed in a later block than the votes, after the fault started.
    before = max(e["height"] for e in events if e["kind"] == "block_committed" and e["t"] < start)
    for e in evidence:
        detail = json.loads(e["detail"])
        assert e["node"] == "validator-1" and detail["type"] == "DuplicateVoteEvidence", e
        assert before < detail["vote_height"] < e["height"], (before, e)
        assert e["t"] > start
    # A block holds at most one item (the room msgstorm's genesis keeps for evidence): two
    # against one validator would be two power updates of it, which halts the kvstore chain.
    assert len({e["height"] for e in evidence}) == len(evidence)
    # The validators' own stores, read after the run: the same items at the same heights.
    address = json.loads((run_dir / "servers" / "cometbft" / "validator-1" / "config" /
                          "priv_validator_key.json").read_text())["address"]
    store = _store_evidence(binary, run_dir / "servers" / "cometbft" / "validator-0")
    assert sorted(store) == sorted((e["height"], address, json.loads(e["detail"])["vote_height"]) for e in evidence)
    # One byzantine key of four (a quarter of the votes, below a third) stops nothing: every
    # message committed, one block a height on every validator.
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert set(statuses) == {"committed"}, statuses
    finalized = _rows(run_dir, "finalized")
    assert len({(r["height"], r["block"]) for r in finalized}) == len({r["height"] for r in finalized})
    summary = json.loads((run_dir / "summary.json").read_text())
    verdicts = {check["name"]: check["verdict"] for check in summary["checks"]}
    assert verdicts["safety"] == "valid"
    found = summary["validators"]
    assert [(row["height"], row["vote_height"]) for row in found["evidence"]] == sorted(
        (e["height"], json.loads(e["detail"])["vote_height"]) for e in evidence)
    assert {row["name"]: row["evidence"] for row in found["validators"]} == {
        "validator-0": 0, "validator-1": len(evidence), "validator-2": 0, "validator-3": 0}
    # The second signer was stopped at the fault's end and nothing msgstorm started is left.
    stops = {json.loads(e["detail"])["name"] for e in events if e["kind"] == "server_stop"}
    assert "second-signer-1" in stops
    assert json.loads(next(e["detail"] for e in events if e["kind"] == "cleanup"))["left"] == []
    assert end > start
    # report.html shows the evidence table, row by row.
    page = (run_dir / "report.html").read_text()
    shown = page[page.index('id="evidence-table"'):]
    shown = shown[:shown.index("</table>")]
    assert len(re.findall(r"<tr><td", shown)) == len(evidence)
