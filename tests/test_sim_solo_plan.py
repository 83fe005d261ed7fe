"""Which scenarios the compiled one-node loop takes (sim/solo_plan.py).

Every schema field must be classified, so a new rule cannot be silently ignored by the
compiled path; a scenario setting a field the loop does not replay runs in the Python loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msgstorm.history import HistoryWriter
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.scenario.schema import BlocksSpec
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.sim.solo_plan import PYTHON_ONLY, SOLO_FIELDS, scenario_fields

ONE_NODE = """
[run]
name = "plan"
duration = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1

[sequencer]
workers = 2
service = "100us"

[backpressure]
{backpressure}

[[agents]]
name = "traders"
arrival = {{ process = "poisson", rate = "100/s" }}
{faults}
"""

UNBOUNDED = 'mode = "unbounded"'

# One scenario per PYTHON_ONLY field, setting that field (to a value other than its default).
SETTING = {
    "backpressure.high": ('mode = "drop_tail"\ncapacity = 10', 'mode = "suspend"\nhigh = 100\nlow = 10'),
    "backpressure.low": ('mode = "drop_tail"\ncapacity = 10', 'mode = "suspend"\nhigh = 100\nlow = 0'),
    "backpressure.initial_base_fee": (UNBOUNDED, 'mode = "eip1559"\ninitial_base_fee = 2.0'),
    "backpressure.min_base_fee": (UNBOUNDED, 'mode = "eip1559"\nmin_base_fee = 0.5'),
    "backpressure.target": (UNBOUNDED, 'mode = "eip1559"\ntarget = 0.4'),
    "backpressure.max_change": (UNBOUNDED, 'mode = "eip1559"\nmax_change = 0.2'),
    "backpressure.underpriced": (UNBOUNDED, 'mode = "eip1559"\nunderpriced = "reject"'),
    "backpressure.base_fee_file": (UNBOUNDED, 'mode = "eip1559"\nbase_fee_file = '
                                   f'"{(Path(__file__).parents[1] / "examples/data/gas-2020-03-12.csv").as_posix()}"'),
    "faults": (UNBOUNDED, UNBOUNDED, '[[faults]]\nkind = "crash"\nnode = "sequencer"\nat = "100ms"\nrestart_after = "100ms"'),
    # Reactive agents call back into Python: a market keeps the Python loop.
    "market": (UNBOUNDED, UNBOUNDED, '[market]\n[[market.instruments]]\nname = "X"\n[[market.keepers]]'),
    # A second queue with workers of its own; controllers steer from Python.
    "sequencer.lane": (UNBOUNDED, UNBOUNDED, '[sequencer.lane]\nworkers = 1'),
    "controllers": (UNBOUNDED, UNBOUNDED, '[[controllers]]\nkind = "block_time"\nmin_interval = "100ms"\n'
                                          'max_interval = "1s"'),
    # Signing and verifying every message for real takes the Python loop (sim/integrity.py).
    "security.verify": (UNBOUNDED, UNBOUNDED, '[security]\nscheme = "hmac-sha256"\nverify_cost = "2us"\n'
                                              'verify = "real"'),
    # Producers across the nodes keep their views in Python (sim/forks.py).
    "blocks.producers": (UNBOUNDED, UNBOUNDED, '[blocks.producers]\nrule = "pos"'),
    # An express lane delays arrivals before the sequencer (sim/rollup/timeboost.py).
    "rollup.timeboost": (UNBOUNDED, UNBOUNDED, '[rollup]\ntimeboost = { express = ["traders"] }'),
}


def _compiled(scenario: Scenario, tmp_path: Path) -> bool:
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(1))
    writer.close()
    return sim.solo is not None


def test_every_schema_field_is_classified() -> None:
    assert scenario_fields() == set(SOLO_FIELDS)


def test_a_new_schema_field_shows_up_unclassified() -> None:
    """The walk finds a field added to a section, so the test above would fail on it."""

    class Blocks(BlocksSpec):
        fair_ordering: bool = False

    class Extended(Scenario):
        blocks: Blocks = Blocks()

    assert scenario_fields(Extended) - set(SOLO_FIELDS) == {"blocks.fair_ordering"}


def test_every_python_only_field_has_a_case() -> None:
    assert set(SETTING) == {path for path, how in SOLO_FIELDS.items() if how == PYTHON_ONLY}


@pytest.mark.parametrize("path", sorted(SETTING))
def test_a_field_the_loop_does_not_replay_keeps_the_python_loop(path: str, tmp_path: Path) -> None:
    base, changed, *fault = (*SETTING[path], "")
    plain = parse_scenario(ONE_NODE.format(backpressure=base, faults=""), source="plain.toml")
    assert _compiled(plain, tmp_path / "plain")
    scenario = parse_scenario(ONE_NODE.format(backpressure=changed, faults=fault[0]), source=f"{path}.toml")
    assert not _compiled(scenario, tmp_path / "set")
