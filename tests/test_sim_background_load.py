"""What a relay sample leaves out (``network.relay.sample_load``, scenario/sample_load.py and
sim/background_load.py): the copies rule by hand, a load the nodes cannot carry refused with
its field, and a sampled run derated by its unsampled messages against full relay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sim_runs import simulate_tables

from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.network import RELAY_PROTOCOLS
from msgstorm.scenario.sample_load import RHO_CAP, derating, download_copies, upload_copies

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "examples" / "bitcoin.toml"
PUSH, ANNOUNCE, PUSH_SQRT = (RELAY_PROTOCOLS.index(name) for name in ("push", "announce", "push_sqrt"))


def test_copies_per_message_by_hand() -> None:
    # Node 0 forwards to 1, 2, 3; node 1 to 0 and 2; node 2 to 0; node 3 to nobody.
    ptr = np.array([0, 3, 5, 6, 6])
    idx = np.array([1, 2, 3, 0, 2, 0])
    degree = np.diff(ptr)
    assert upload_copies(PUSH, degree).tolist() == [2, 1, 0, 0]  # every peer but the sender
    assert upload_copies(ANNOUNCE, degree).tolist() == [1, 1, 1, 1]
    # push_sqrt: ceil(sqrt(3)) = 2 pushes, less the sender's share 1/3; ceil(sqrt(2)) = 2, less 1/2.
    assert upload_copies(PUSH_SQRT, degree).tolist() == pytest.approx([2 * 2 / 3, 2 * 1 / 2, 0, 0])
    up = upload_copies(PUSH, degree)
    # Node 0 hears from 1 (1 copy over 2 links) and 2 (0); node 2 from 0 (2 over 3) and 1 (1 over 2).
    assert download_copies(PUSH, up, ptr, idx).tolist() == pytest.approx([0.5, 2 / 3, 2 / 3 + 0.5, 2 / 3])
    assert download_copies(ANNOUNCE, upload_copies(ANNOUNCE, degree), ptr, idx).tolist() == [1, 1, 1, 1]
    assert derating(0.5) == pytest.approx(2.0)
    assert derating(3.0) == pytest.approx(1 / (1 - RHO_CAP))


def test_a_load_the_uplinks_cannot_carry_is_refused_with_its_field() -> None:
    # Held uplinks (the preset's): each transaction copy holds an uplink for a link delay.
    overrides = ["network.total_nodes=300", "agents.0.count=300", 'agents.0.arrival.rate="60/h"',
                 "network.relay.sample=0.1"]
    with pytest.raises(ScenarioError) as caught:
        load_scenario(PRESET, overrides)
    issue = caught.value.issues[0]
    assert issue.field == "network.relay.sample"
    assert "uplinks busy" in issue.message and 'sample_load = "none"' in issue.message
    # Leaving the load out is the user's to choose; a serial uplink carries it.
    load_scenario(PRESET, [*overrides, 'network.relay.sample_load="none"'])
    load_scenario(PRESET, [*overrides, 'network.uplink="serial"'])
    # And the CPUs: 2,000 a second at 2 ms each is four CPUs' work.
    with pytest.raises(ScenarioError) as caught:
        load_scenario(PRESET, ["network.total_nodes=1000", "agents.0.count=1000", 'agents.0.arrival.rate="7200/h"',
                               "network.relay.sample=0.01", 'network.uplink="serial"', 'network.upload={}',
                               'network.download={}', 'network.bandwidth="1Gbit/s"'])
    assert "CPU busy" in caught.value.issues[0].message


def test_the_default_load_dumps_as_before() -> None:
    relay = load_scenario(PRESET, ["network.relay.sample=0.5", 'network.uplink="serial"']).model_dump(mode="json")
    assert "sample_load" not in relay["network"]["relay"]


def _compact(*more: str) -> Any:
    """300 nodes sending 50 transactions a second of 2.5 kB (about half of a 2 Mbit/s
    uplink, one copy a node each) for a minute, and compact blocks every 10 s: blocks are
    small, and the transactions' load is what slows them. A minute shows it as three did
    (median block times 0.27, 1.30 and 3.16 s alone, derated and at full relay, against
    0.31, 2.05 and 10.8 s) at a third of the runs' CPU time."""
    return load_scenario(PRESET, ["network.total_nodes=300", "agents.0.count=300", 'run.duration="1min"',
                                  'run.drain="1min"', 'blocks.interval="10s"', "blocks.header_size=20000",
                                  'agents.0.arrival.rate="600/h"', "agents.0.size=2500", 'network.uplink="serial"',
                                  "network.upload={}", "network.download={}", 'network.bandwidth="2Mbit/s"',
                                  'run.window="10s"', 'network.relay.kinds={block="compact"}', *more])


def _median_block_s(tables: dict[str, dict[str, list[Any]]]) -> float:
    made = dict(zip(tables["blocks"]["block"], tables["blocks"]["t_produced"], strict=True))
    arrivals: dict[int, list[int]] = {}
    for block, t in zip(tables["block_arrivals"]["block"], tables["block_arrivals"]["t"], strict=True):
        arrivals.setdefault(block, []).append(t - made[block])
    return float(np.mean([np.median(times) for times in arrivals.values()])) / 1e9


def _load(tables: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    events = tables["events"]
    return dict(json.loads(next(d for k, d in zip(events["kind"], events["detail"], strict=True)
                                if k == "relay_sample")))


@pytest.mark.slow
def test_the_left_out_load_slows_the_sample_toward_full_relay(tmp_path) -> None:
    full, _, _ = simulate_tables(_compact(), tmp_path / "full")
    alone, _, _ = simulate_tables(_compact("network.relay.sample=0.1", 'network.relay.sample_load="none"'),
                                  tmp_path / "alone")
    derated, _, _ = simulate_tables(_compact("network.relay.sample=0.1"), tmp_path / "derated")
    assert "load" not in _load(alone)
    load = _load(derated)
    assert load["windows"] == 6  # a minute of 10 s windows, each with messages
    # The mean load per node: 45 unsampled messages a second x 2,500 bytes x 8 bits over
    # 2 Mbit/s x one copy a node on average (announce and fetch) = 0.45.
    assert load["mean"]["upload"] == pytest.approx(0.45, rel=0.1)
    # The nodes many peers hear from first serve several copies: some are saturated.
    assert load["peak"]["upload"] > 1 and load["saturated_windows"] > 0
    # Same blocks made either way; the derated sample's blocks travel slower than the
    # sample alone's, and nearer full relay's.
    assert derated["blocks"]["t_produced"][:10] == alone["blocks"]["t_produced"][:10]
    full_s, alone_s, derated_s = _median_block_s(full), _median_block_s(alone), _median_block_s(derated)
    assert alone_s < derated_s < full_s
    assert derated_s > 3 * alone_s
