"""A measured verification cost, used as processing time, sets the sequencer's knee: one node
whose CPU verifies every message (ed25519, above one core's verification capacity at the
ramp's top) saturates at 1 / cost, and the knee the analysis finds is there within 5%."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msgstorm.security.costs import COSTS_ENV, measure, save_costs

# An ed25519 verification as this machine measured it at rest (about 0.18 ms).
VERIFY_NS = 180_000

KNEE_TOML = """
[run]
name = "verify-knee"
seed = {seed}
duration = "16s"
drain = "2s"
window = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = "0s"

[sequencer]
service = "{service_ns}ns"

[blocks]
interval = "50ms"
max_messages = 1000000

[security]
scheme = "ed25519"

[[agents]]
name = "ramp"
role = "trader"
arrival = {{ process = "step_ramp", start = "{start}/s", step = "{step}/s", every = "2s", steps = 8 }}
"""


@pytest.mark.parametrize("seed", [11, 12])
def test_the_knee_is_where_the_measured_verification_cost_says(
        scenario_from, run_scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    path = save_costs(measure(per_round=20, rounds=2), tmp_path / "costs.json")
    # The cost the run reads is the file's, as a user's measured file gives it; its value is
    # pinned here because where a ramp's steps fall against the capacity decides whether a
    # step near it crosses the bar, and a cost measured on a loaded machine moves them (a
    # knee at 92% of the capacity once at a load of 12).
    measured = json.loads(path.read_text())
    measured["schemes"]["ed25519"]["verify_ns"] = VERIFY_NS
    path.write_text(json.dumps(measured))
    monkeypatch.setenv(COSTS_ENV, str(path))
    from msgstorm.security.costs import load_costs

    costs = load_costs(path)
    assert costs is not None
    verify_ns = round(costs.schemes["ed25519"].verify_ns)
    assert verify_ns == VERIFY_NS
    capacity_per_s = 1e9 / verify_ns  # one core verifying, nothing else on it
    # The ramp: 72.5% to 107.5% of that capacity in 5% steps; the sequencer's own service is a
    # twentieth of the verification, so the node's CPU is what saturates. No step sits at the
    # capacity itself: there the queue only drifts (as the square root of time), and whether
    # a 2 s step's p99 crosses the bar is chance (it stayed under in 11 of 30 costs and seeds
    # tried). The steps either side, 97.5% and 102.5%, are both within 5% of the capacity.
    start, step = round(0.725 * capacity_per_s), round(0.05 * capacity_per_s)
    result = run_scenario(scenario_from(KNEE_TOML.format(seed=seed, service_ns=verify_ns // 20, start=start,
                                                         step=step)))
    assert result.summary["security"]["verify_cost_us"] == round(verify_ns / 1e3, 3)
    assert result.summary["security"]["source"] == str(path)
    knee = result.summary["capacity"]["knee_rate_per_s"]
    assert knee is not None
    assert abs(knee - capacity_per_s) <= 0.05 * capacity_per_s, (knee, capacity_per_s)
    # Without the verification the same ramp passes every step: the cost is what set the knee.
    free = run_scenario(scenario_from(KNEE_TOML.format(seed=seed, service_ns=verify_ns // 20, start=start,
                                                       step=step).replace('scheme = "ed25519"', 'scheme = "none"')))
    method = free.summary["capacity"]["method"]
    assert "first failing step" not in method, method
