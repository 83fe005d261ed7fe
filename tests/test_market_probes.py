"""Probe books: bad debt at a grid of leverages from one run, and the run left as it was.

Checked: the curve against a closed form (a gap through one node, by hand); every table of a
run with probes against the run without them; per seed, bad debt growing with leverage on
drawn crashes; a probe at the accounts' own leverage executing where they did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_sweep import LEVERAGE

from msgstorm import load_scenario, run
from msgstorm.history.schema import TABLES
from msgstorm.scenario import ScenarioError, parse_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _table(run_dir: Path, name: str) -> list[dict[str, object]]:
    directory = run_dir / "history" / name
    if not directory.is_dir():
        return []
    return [row for part in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def test_the_curve_is_the_closed_form_of_a_gap(tmp_path: Path) -> None:
    """The hand-computed gap of the safe-leverage tests (``test_sweep.LEVERAGE``): a 30% gap at
    1 s, one node, 1 ms blocks, maintenance 10%, penalty 5%, no slippage. A long at leverage L
    (collateral c, size L c / 100) has its line at 100 (1 - 1/L) / 0.9: at or above 70 from
    L = 2.70 on, when it is liquidated at 70 and keeps c (1 - 0.3 L - 0.035 L), bad debt
    c (0.335 L - 1) when positive: 100 (0.335 - 1/L) % of its open interest L c. Below 2.70 it
    is marked at 70 and keeps c (1 - 0.3 L) > 0."""
    scenario = parse_scenario(LEVERAGE + "\n[market.probes]\nleverages = [2.0, 2.8, 2.99, 3.0, 4.0]\n",
                              source="lev.toml")
    result = run(scenario, tmp_path / "run")
    points = {point["leverage"]: point for point in result.summary["market"]["probes"]}
    for leverage, point in points.items():
        expected = max(0.0, 100 * (0.335 - 1 / leverage))
        assert point["pct_of_open_interest"] == pytest.approx(expected, abs=1e-6), (leverage, point)
        assert point["executed"] == (10 if leverage >= 2.7 else 0)
        assert point["accounts"] == (10 if expected > 0 else 0)
    rows = _table(result.run_dir, "probe_executions")
    assert [row["price"] for row in rows] == pytest.approx([70.0] * len(rows))
    assert all(row["t"] >= 1_000_000_000 for row in rows)
    # The carrier is a message the sequencer received at or after the probe's send (1 s: the
    # gap's price reached the keeper's node, which sequences, at once; reaction 0).
    received = {row["msg_id"]: row["t_received"] for row in _table(result.run_dir, "messages")}
    assert all(received[row["carrier_msg_id"]] >= 1_000_000_000 for row in rows)


def test_probes_leave_every_table_of_the_run_as_it_was(tmp_path: Path) -> None:
    """traffic_share = 0: the same history as without probes, table for table, but theirs."""
    sets = ["run.duration=\"6s\"", "run.drain=\"2s\"", "run.seed=2"]
    plain = run(load_scenario(EXAMPLES / "leverage-latency.toml", sets), tmp_path / "plain")
    probed = run(load_scenario(EXAMPLES / "leverage-latency.toml",
                               [*sets, "market.probes.leverages=[5.0, 10.0, 15.0, 19.0]"]), tmp_path / "probed")
    assert _table(probed.run_dir, "probe_executions"), "no probe executed: the comparison shows nothing"
    for name in TABLES:
        if name in ("run", "probe_executions"):
            continue
        assert _table(plain.run_dir, name) == _table(probed.run_dir, name), name
    without = {key: value for key, value in probed.summary["market"].items() if key != "probes"}
    assert without == plain.summary["market"]


def test_a_share_of_probe_liquidations_as_messages_loads_the_network(tmp_path: Path) -> None:
    sets = ["run.duration=\"6s\"", "run.drain=\"2s\"", "run.seed=2"]
    probed = run(load_scenario(EXAMPLES / "leverage-latency.toml",
                               [*sets, "market.probes.leverages=[15.0, 19.0]", "market.probes.traffic_share=1.0"]),
                 tmp_path / "probed")
    rows = _table(probed.run_dir, "probe_executions")
    assert rows
    messages = {row["msg_id"]: row for row in _table(probed.run_dir, "messages")}
    triggers = {row["msg_id"] for row in _table(probed.run_dir, "triggers")}
    for row in rows:  # each its own liquidation message from the keeper's node, not an account's
        carrier = messages[row["carrier_msg_id"]]
        assert carrier["kind"] == "liquidation" and carrier["node"] == "ap-northeast-0"
        assert row["carrier_msg_id"] not in triggers


@pytest.mark.parametrize("draw", range(6))
def test_per_seed_bad_debt_grows_with_leverage_on_a_drawn_crash(tmp_path: Path, draw: int) -> None:
    """A crash drawn per case (its fall, its length, the latency to the keeper's region) on a
    price that only falls, and a delay that does not change. A long at leverage L liquidated
    at a price a share rho below its line, P = 100 (1 - 1/L) / (1 - m) x (1 - rho), keeps
    c (1 - L (1 - P (1 - penalty) / 100)): bad debt 100 (1 - 1/L)(1 - K (1 - rho)) % of its open
    interest, K = (1 - penalty) / (1 - m), growing with L for one rho. But the oracle
    publishes the 100 ms steps of the path: a line is crossed somewhere inside a step and
    executed at a step's price, so rho differs between leverages by up to one step's fall s,
    and a higher leverage may end lower by up to 100 K s (a fast crash's steps are wide). So on
    one seed the share at a higher leverage is at least a lower one's less 100 K s. On a path
    that also rises it need not be even that (a line crossed in a rebound may be liquidated at
    a better price than a lower one crossed in the trough), so the search judges a seed over
    budget at a leverage when it is at that one or a lower one (docs/cli.md, Safe leverage)."""
    rng = np.random.default_rng(draw)
    fall, over, latency = rng.uniform(0.1, 0.5), rng.uniform(0.5, 3.0), rng.uniform(0.02, 1.0)
    text = (EXAMPLES / "leverage-latency.toml").read_text()
    scenario = parse_scenario(text, source="leverage-latency.toml", overrides=[
        "run.duration=\"5s\"", "run.drain=\"3s\"", "market.instruments.0.volatility=\"0%/s\"",
        f"network.latency={{\"us-east/ap-northeast\"=\"{latency:.3f}s\"}}",
        f"market.instruments.0.shocks=[{{at=\"1s\", fall=\"{fall:.1%}\", over=\"{over:.2f}s\"}}]",
        "market.probes.leverages=[2.0, 3.0, 4.5, 6.0, 8.0, 11.0, 14.0, 17.0, 19.5]"])
    points = run(scenario, tmp_path / "run").summary["market"]["probes"]
    shares = [point["pct_of_open_interest"] for point in points]
    step = 1 - (1 - fall) ** (0.1 / over)  # one 100 ms step's fall (log-linear)
    slack = 100 * (1 - 0.02) / (1 - 0.05) * step + 1e-6
    for low in range(len(shares)):
        assert min(shares[low:]) >= shares[low] - slack, (fall, over, latency, shares)
    assert shares[-1] > shares[0] + slack


def test_a_probe_leverage_at_or_past_the_line_is_refused_naming_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"market\.probes\.leverages.*1 / maintenance_margin = 20"):
        load_scenario(EXAMPLES / "leverage-latency.toml", ["market.probes.leverages=[5.0, 20.0]"])
    with pytest.raises(ScenarioError, match="increasing"):
        load_scenario(EXAMPLES / "leverage-latency.toml", ["market.probes.leverages=[5.0, 3.0]"])


_MECHANISMS = {  # each mechanism the probe books carry, with a setting drawn per case
    "whole": lambda rng: [],
    "partial": lambda rng: [f'market.liquidation.restore_to="{rng.choice(["maintenance", "initial"])}"',
                            "market.liquidation.initial_margin=0.08"],
    "close_factor": lambda rng: [f"market.liquidation.close_factor={rng.uniform(0.2, 0.8):.2f}"],
}
_GRID = [4.0, 7.0, 10.0, 13.0, 16.0]


def _drawn_market(mechanism: str, draw: int) -> list[str]:
    """A small venue (examples/venue-partial.toml, 40 accounts) with its crash, volatility, the
    keepers' latency and reaction, the longs' share (the shorts in profit cover a part of the
    longs' shortfall), the insurance fund and the keepers' share of the penalty
    drawn for the case, and what covers a shortfall the fund cannot (deleveraging, a
    socialised loss, nothing) in turn; two racing keepers in every other case (their calls on
    one account meet in a block)."""
    rng = np.random.default_rng([draw, len(mechanism)])
    fall, over, latency = rng.uniform(0.1, 0.4), rng.uniform(0.3, 4.0), rng.uniform(0.01, 0.5)
    return ["run.duration=\"6s\"", "run.drain=\"3s\"", "market.accounts.0.count=40",
            f'market.accounts.0.long_share="{rng.uniform(0.85, 0.97):.0%}"',
            f'market.liquidation.mechanism="{mechanism}"', f"market.liquidation.keeper_share={rng.uniform(0.5, 1):.2f}",
            f"market.liquidation.insurance_fund={rng.choice([0.0, 300.0])}",
            f'market.liquidation.on_empty="{("adl", "socialise", "none")[draw % 3]}"',
            f'market.instruments.0.volatility="{rng.uniform(0.0, 3.0):.2f}%/s"',
            f'market.instruments.0.shocks=[{{at="1s", fall="{fall:.1%}", over="{over:.2f}s"}}]',
            f'network.latency={{"us-east/eu-west"="{latency:.3f}s"}}',
            f'market.keepers.0.reaction="{rng.uniform(0.0, 0.5):.3f}s"', f"market.keepers.0.count={2 - draw % 2}",
            *_MECHANISMS[mechanism](rng)]


def _whole_share(sets: list[str], leverage: float, seed: int, out: Path) -> float:
    sets = [*sets, f"run.seed={seed}", *(f"market.accounts.0.{key}={value}" for key, value in
                                          (("leverage_median", leverage), ("leverage_sigma", 0.0),
                                           ("leverage_cap", leverage)))]
    share: float = run(load_scenario(EXAMPLES / "venue-partial.toml", sets), out).summary["market"]["bad_debt"][
        "pct_of_open_interest"]
    return share


@pytest.mark.parametrize("mechanism", list(_MECHANISMS))
@pytest.mark.parametrize("draw", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_probe_books_give_the_whole_runs_over_and_under_at_every_leverage(tmp_path: Path, mechanism: str,
                                                                          draw: int) -> None:
    """Differential: per mechanism the probe books carry, on a small drawn venue with its
    fund and cover, two seeds.
    A probe book at leverage L against a whole run with every account at L on the same seed:
    the same bad-debt share (to the summary's rounding), so the same seeds over budget at
    every grid leverage and the same answer from the search's looks. The probes send their
    own liquidations (``traffic_share = 1``) on a network they do not congest (40 accounts, a
    block every 100 ms), so each commits in the block its account's would: what is compared
    is the rule, not the carriers' approximation."""
    from msgstorm.sweep.leverage_probes import PCT, probe_search

    sets = _drawn_market(mechanism, draw)
    seeds = [11, 12]
    probe_rows, whole_rows = [], []
    for seed in seeds:
        probed = run(load_scenario(EXAMPLES / "venue-partial.toml", [
            *sets, f"run.seed={seed}", f"market.probes.leverages={_GRID}", "market.probes.traffic_share=1.0"]),
            tmp_path / f"probes-{seed}")
        shares = [point["pct_of_open_interest"] for point in probed.summary["market"]["probes"]]
        whole = [_whole_share(sets, leverage, seed, tmp_path / f"whole-{seed}-{leverage}") for leverage in _GRID]
        assert shares == pytest.approx(whole, rel=2e-3, abs=1e-4), (seed, sets)
        probe_rows.append({"seed": seed, "status": "ok", **{PCT.format(index=at): share
                                                           for at, share in enumerate(shares)}})
        whole_rows.append({"seed": seed, "status": "ok", **{PCT.format(index=at): share
                                                           for at, share in enumerate(whole)}})
    budget = float(np.median([row[PCT.format(index=2)] for row in whole_rows])) + 1e-3  # a boundary inside the grid
    answers = [probe_search(lambda n, rows=rows: rows[:n], _GRID, confidence=0.5, budget_pct=budget)
               for rows in (probe_rows, whole_rows)]
    assert [p["exceed"] for p in answers[0]["points"]] == [p["exceed"] for p in answers[1]["points"]]
    assert answers[0]["safe_leverage"] == answers[1]["safe_leverage"]
    assert any(share > 0 for row in whole_rows for key, share in row.items() if key.startswith("market.")), \
        "no bad debt at any leverage: the comparison shows nothing"
