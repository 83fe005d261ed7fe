"""The simulator's runs as the tests read them: a scenario's tables, a run on the Python paths
against the compiled ones (``same_both_ways``), each made once a session and shared by the
pytest-xdist workers (``shared_tables``), the examples shortened, drawn market scenarios, and
the small gossip states and networks the byzantine, relay and consensus tests build.

Imported by the test modules (``from sim_runs import ...``); tests/conftest.py keeps pytest's
hooks, fixtures and the helpers of live servers and processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conftest import EXAMPLES, _session_shared_dir
from hypothesis import strategies as st

from msgstorm.history.schema import TABLES
from msgstorm.scenario import Scenario, parse_scenario

if TYPE_CHECKING:
    from msgstorm.sim.gossip import GossipState


# The byzantine faults' tests (delay, reorder, flood, eclipse) share these: a gossip state on
# a given overlay with constant link latency and validation time, run until it is quiet; and
# a scenario of eight nodes in two regions, flood gossip, every delivery recorded.

def gossip_on(forward: list[list[int]], link_ns: int, validation_ns: int, **options: Any) -> Any:
    """A ``GossipState`` on the overlay ``forward`` (node i forwards to ``forward[i]``);
    ``options``: more of its arguments (a relay protocol, its timeout)."""
    import numpy as np

    from msgstorm.scenario.distributions import Constant
    from msgstorm.scenario.schema import LinkModel
    from msgstorm.sim.gossip import GossipState
    from msgstorm.sim.link_model import Degradations
    from msgstorm.sim.topology import Topology

    n = len(forward)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[link_ns]], region_model=[[LinkModel()]], node_overrides={},
                        forward=forward, connections=forward)
    return GossipState(topology, Constant(value=validation_ns), 0.0, np.random.default_rng(1),
                       np.random.default_rng(2), Degradations(n), delivery_stride=1, delivery_budget=10**6,
                       order_seed=7, **options)


Tables = dict[str, dict[str, list[Any]]]
# The tables ``simulate_tables`` reads back.
# Every table a simulated run writes but ``run`` (its wall time and host): the network's, the
# market's, the chain's; a table the run did not write reads empty both ways.
SIM_TABLES = tuple(table for table in TABLES if table != "run")


def simulate_tables(scenario: Scenario, out: Path, quiet_announcements: bool = True,
                    reference: bool = False) -> tuple[Tables, int, GossipState]:
    """Run ``scenario`` on the simulator into ``out`` (``ShadowNetwork`` on its Python
    paths with ``reference``, and the gossip kernel's ``quiet_announcements``): its tables (read while the directory exists), its end, and
    the gossip kernel's state at the end (``steps``: how many events it ran)."""
    import numpy as np

    from msgstorm.history import HistoryWriter, read_history
    from msgstorm.runner import write_run_row
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, helper_cpus=0, reference=reference)
    sim.gossip.quiet_announcements = quiet_announcements
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    t_end = sim.finish()
    write_run_row(writer, scenario, sim, t_end)
    writer.close()
    history = read_history(out)
    return {table: history.table(table).to_pydict() for table in SIM_TABLES}, t_end, sim.gossip


def built_network(scenario: Scenario, read: Callable[[Any], Any]) -> Any:
    """``read`` of the ``ShadowNetwork`` built for ``scenario`` (not run), which is then
    finished and its history closed: what the network chose to do from the scenario alone."""
    import tempfile

    import numpy as np

    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    with tempfile.TemporaryDirectory() as tmp:
        writer = HistoryWriter(Path(tmp) / "history", scenario.history.row_group_size)
        sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(scenario.run.seed).spawn(2)[1], helper_cpus=0)
        value = read(sim)
        sim.finish()
        writer.close()
    return value


def same_both_ways(scenario: Scenario) -> Tables:
    """Run ``scenario`` on the simulator's Python paths (``ShadowNetwork(reference=True)``)
    and on its compiled ones; assert equal histories, row for row, and the same end; return
    the reference's tables."""
    reference, t_reference = shared_tables(scenario, reference=True)
    compiled, t_compiled = shared_tables(scenario)
    assert t_compiled == t_reference
    for table in reference:
        assert compiled[table] == reference[table], table
    return reference


def shared_tables(scenario: Scenario, reference: bool = False) -> tuple[Tables, int]:
    """``simulate_tables`` of ``scenario``, on its Python paths with ``reference`` and with
    every switch as a run has it (on) without: its tables and end. Several modules compare
    the same scenarios both ways (the reacting examples, the leader crash, with the block
    step forced or not), so the session keeps each run made, keyed by the scenario's pickle
    and the path, in a directory every pytest-xdist worker shares (pytest's base temporary
    directory), and a worker that finds it done, or being made (a lock), reads it instead of
    running it again. A simulator run is deterministic: the history read back is the one it
    would write again. Whether a small run takes the block step's loop is part of a compiled
    run's key (tests/test_sim_block_step.py has it always taken; the reference never takes
    it); a test that changes the code the run takes in any other way calls
    ``simulate_tables``."""
    import fcntl
    import hashlib
    import pickle

    from msgstorm.history import read_history
    from msgstorm.sim import warm

    root = _session_shared_dir() / "shared-runs"
    root.mkdir(parents=True, exist_ok=True)
    path = "reference" if reference else warm.uses_block_step(False)
    key = hashlib.sha256(pickle.dumps((scenario, path))).hexdigest()[:20]
    out, end = root / key, root / f"{key}.end"
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if end.exists():
            history = read_history(out)
            return {table: history.table(table).to_pydict() for table in SIM_TABLES}, int(end.read_text())
        shutil.rmtree(out, ignore_errors=True)  # what a run that failed half-way wrote
        tables, t_end, _ = simulate_tables(scenario, out, reference=reference)
        end.write_text(str(t_end))
        return tables, t_end


def example_scenario(name: str, overrides: list[str], extra: str = "") -> Scenario:
    """``examples/NAME.toml`` with ``extra`` TOML appended and ``overrides`` set."""
    text = (EXAMPLES / f"{name}.toml").read_text() + extra
    return parse_scenario(text, source=f"{name}.toml", base_dir=EXAMPLES, overrides=overrides)


# The flash crash's leader crashes while the burst is on; its standby takes over a second
# later and sequences what its mempool saw.
LEADER_CRASH = """
[[faults]]
kind = "crash"
node = "us-east-0"
at = "6500ms"
restart_after = "2s"
"""


# Every example with a market, front-runners or controllers, shortened to keep this quick.
REACTING_EXAMPLES = {
    "black-thursday": ['run.duration="6s"', 'run.drain="2s"'],
    "black-thursday-fee-aware": ['run.duration="6s"', 'run.drain="2s"'],
    "black-thursday-lane": ['run.duration="6s"', 'run.drain="2s"'],
    "front-running": ['run.duration="5s"', 'run.drain="2s"'],
    "leverage-latency": ['run.duration="5s"', 'run.drain="3s"'],
    "oracle-attack": ['run.duration="10s"', 'run.drain="3s"'],
    "self-healing": ['run.duration="9s"', 'run.drain="3s"'],
    "solana-spam": ['run.duration="5s"', 'run.drain="2s"'],
}


@st.composite
def market_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A few nodes with a standby, traffic, a market with keepers and an oracle, and a
    crash of the leader or the standby."""
    regions = draw(st.sampled_from([["us-east", "eu-west"], ["us-east", "us-west", "ap-northeast"]]))
    per_region = draw(st.integers(min_value=1, max_value=3))
    crashed = draw(st.sampled_from(["us-east-0", f"{regions[1]}-0"]))
    return {
        "run": {"name": "mempools", "seed": draw(st.integers(min_value=0, max_value=2**31)),
                "duration": "3s", "drain": "2s"},
        "network": {"regions": regions, "nodes_per_region": per_region, "processing": "50us"},
        "sequencer": {"node": "us-east-0", "standby": [f"{regions[1]}-0"], "failover_timeout": "300ms",
                      "service": {"dist": "exponential", "mean": f"{draw(st.integers(100, 400))}us"},
                      "policy": draw(st.sampled_from(["fifo", "fee_priority"]))},
        "blocks": {"interval": draw(st.sampled_from(["100ms", "250ms"])), "max_messages": 2000},
        "agents": [{"name": "traders", "role": "trader", "count": 20,
                    "arrival": {"process": "poisson", "rate": f"{draw(st.integers(20, 150))}/s"},
                    "fee": {"dist": "lognormal", "median": 2.0, "sigma": 0.4}}],
        "faults": [{"kind": "crash", "node": crashed, "at": draw(st.sampled_from(["1s", "1500ms", "2s"])),
                    "restart_after": "500ms"}],
        "market": {
            "resolution": "100ms", "maintenance_margin": "10%", "liquidation_penalty": "5%",
            "instruments": [{"name": "ETH", "price": 2000.0, "volatility": "100%/y",
                             "shocks": [{"at": "1s", "fall": f"{draw(st.integers(5, 30))}%", "over": "1s"}]}],
            "oracle": {"node": f"{regions[-1]}-0", "deviation": "0.5%", "fee": 100.0},
            "accounts": [{"count": draw(st.integers(20, 300)), "leverage_median": 4.0, "leverage_cap": 9.5,
                          "collateral": {"dist": "lognormal", "median": 10000.0, "sigma": 1.0},
                          "long_share": "80%"}],
            "keepers": [{"count": draw(st.integers(1, 4)),
                         "reaction": {"dist": "lognormal", "median": "100ms", "sigma": 0.5},
                         "fee": 5.0, "race": draw(st.booleans())}],
        },
    }


def delivered_when_quiet(state: Any) -> dict[tuple[int, int], int]:
    """Run ``state`` until nothing is left: each (message, node) delivery's time."""
    while state.run(10**12) is not None:
        pass
    msg, node, t, _hops = state.drain_deliveries()
    return {(m, v): when for m, v, when in zip(msg.tolist(), node.tolist(), t.tolist(), strict=True)}


def deliveries_by_message(history: Any) -> dict[int, dict[str, int]]:
    """A history's ``deliveries``: message -> node -> time delivered."""
    out: dict[int, dict[str, int]] = {}
    for row in history.table("deliveries").to_pylist():
        out.setdefault(row["msg_id"], {})[row["node"]] = row["t_delivered"]
    return out


def eight_nodes(name: str, peers: int, rate: str) -> str:
    """Eight nodes in two regions (us-east-0 the sequencer), flood gossip over ``peers``
    outbound connections each, traders at ``rate`` from every node, every delivery kept."""
    return f"""
[run]
name = "{name}"
seed = 4
duration = "3s"
drain = "2s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
processing = "50us"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 8
peers = {peers}

[sequencer]
node = "us-east-0"

[history]
delivery_sample = 1.0

[[agents]]
name = "traders"
count = 8
arrival = {{ process = "poisson", rate = "{rate}" }}
"""


def four_validators(name: str, seed: int, producers: str = "") -> str:
    """Two regions of three nodes, 10 ms apart, every pair linked; the first two nodes of
    each region are the four validators (equal stake: a quorum is 3 of 4), taking turns in
    1 s proof-of-stake slots, final by votes (``producers``: more lines of that table)."""
    return f"""
[run]
name = "{name}"
seed = {seed}
duration = "8s"
drain = "0s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 3
intra_region_latency = "5ms"
latency = {{ "us-east/eu-west" = "10ms" }}
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 5
peers = 10                   # five connections out of each node: every pair linked

[blocks]
interval = "1s"

[blocks.producers]
rule = "pos"
nodes = ["us-east-0", "us-east-1", "eu-west-0", "eu-west-1"]
finality = "votes"
{producers}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "5/s" }}
"""


def four_tendermint(name: str, duration: str, tendermint: str, shares: str = "[1, 1, 1, 1]", rest: str = "",
                    rate: str = "0/s") -> str:
    """Four validators on four nodes, every pair linked with no delay, no processing, running
    round-based consensus (``tendermint``: lines of its table; ``rest``: more of the file)."""
    return f"""
[run]
name = "{name}"
seed = 3
duration = "{duration}"
drain = "0s"

[network]
regions = ["us-east"]
nodes_per_region = 4
intra_region_latency = "0ns"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 3
peers = 6

[blocks.producers]
consensus = "tendermint"
shares = {shares}

[blocks.producers.tendermint]
{tendermint}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "{rate}" }}
{rest}
"""
