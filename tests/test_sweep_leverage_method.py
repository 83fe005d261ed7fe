"""Safe leverage across liquidation mechanisms: the search takes the probe books where they
answer (whole, partial or close-factor liquidations at the index, each book with its own fund
and cover), whole runs, each seed bisected, where they cannot (auctions, cross margin, a
mark), refuses probes asked for there, and sets each curve's margin beside the first's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_sweep import LEVERAGE
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.scenario import load_scenario
from msgstorm.sweep.leverage import check_seeds, choose_method, runs_seeds, vault_liquidation_ratio
from msgstorm.sweep.leverage_html import margin_comparison, vault_line

ROOT = Path(__file__).resolve().parents[1]
PARTIAL = ROOT / "examples" / "venue-partial.toml"
DUTCH = ROOT / "examples" / "venue-dutch.toml"
WHOLE = ROOT / "examples" / "leverage-latency.toml"
DAY_2020 = ROOT / "examples" / "black-thursday-2020.toml"


def test_auto_takes_probes_where_they_answer_and_whole_runs_where_they_cannot() -> None:
    assert choose_method(WHOLE, "auto") == ("probes", None)
    alone = ["market.liquidation.keeper_share=1.0", "market.liquidation.insurance_fund=0.0",
             'market.liquidation.on_empty="none"']
    assert choose_method(PARTIAL, "auto", sets=alone) == ("probes", None)
    assert choose_method(PARTIAL, "auto", sets=[*alone, 'market.liquidation.mechanism="close_factor"']) == (
        "probes", None)
    # A fund, a keeper share feeding one, or a cover: whole runs, exact and cheaper; probes if asked.
    for held, words in zip(alone, ["an insurance fund", "an insurance fund", "on_empty = 'adl'"], strict=True):
        method, note = choose_method(PARTIAL, "auto", sets=[value for value in alone if value != held])
        assert method == "bisect" and note is not None and f"the accounts share {words}" in note, held
    assert choose_method(PARTIAL, "probes") == ("probes", None)
    method, note = choose_method(DUTCH, "auto")
    assert method == "bisect" and note is not None
    assert "--method bisect" in note and "liquidation.mechanism 'dutch_auction' (its auctions" in note
    method, note = choose_method(ROOT / "examples" / "venue-cross.toml", "auto")
    assert method == "bisect" and note is not None and 'cross-margin accounts (margin = "cross")' in note
    assert choose_method(PARTIAL, "runs") == ("runs", None)
    assert choose_method(PARTIAL, "bisect") == ("bisect", None)


def test_probes_asked_for_a_mechanism_they_cannot_answer_for_are_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"--method probes: .*liquidation.mechanism 'dutch_auction'.*use --method bisect"):
        choose_method(DUTCH, "probes")
    with pytest.raises(ValueError, match="--method: expected auto, probes, bisect or runs"):
        choose_method(WHOLE, "halves")


def test_the_vaults_of_an_english_auction_are_bisected_because_they_share_the_keepers_capital() -> None:
    method, note = choose_method(DAY_2020, "auto")
    assert method == "bisect" and note is not None
    assert "liquidation.mechanism 'english_auction' (its auctions draw on the bidding keepers' capital" in note


def test_a_vaults_leverage_is_said_as_its_collateral_over_its_debt() -> None:
    """A vault at L holds L x its own money in collateral, (L - 1) x of it borrowed: collateral
    over debt L / (L - 1), 1.5x -> 300%, 3x -> 150%; Maker's liquidation ratio 150% is
    1 / (1 - 1/3), the example's maintenance margin 0.333333."""
    assert vault_line(1.5, 1.5) == "a vault at 1.5x: collateral at 300% of its debt (L / (L - 1); liquidated below 150%)"
    assert "collateral at 150% of its debt" in vault_line(3.0, 1.5)
    ratio = vault_liquidation_ratio(load_scenario(DAY_2020))
    assert ratio is not None and abs(ratio - 1.5) < 1e-5
    assert vault_liquidation_ratio(load_scenario(PARTIAL)) is None  # positions, not vaults
    assert vault_liquidation_ratio(load_scenario(WHOLE)) is None


def test_a_curve_varied_onto_another_mechanism_is_named_in_the_note() -> None:
    vary = ("market.liquidation.mechanism", ["whole", "dutch_auction"])
    method, note = choose_method(WHOLE, "auto", vary=vary)
    assert method == "bisect" and note is not None
    assert "'dutch_auction' (its auctions are taken by the keepers every account shares) (with " \
           "market.liquidation.mechanism=\"dutch_auction\")" in note
    assert choose_method(WHOLE, "auto", vary=("market.liquidation.mechanism", ["whole", "partial", "close_factor"])) \
        == ("probes", None)


def test_runs_take_the_fewest_seeds_that_can_show_a_leverage_unless_told() -> None:
    """None over of N shows P(over) <= 1 - c when 1 - (1 - c)^(1/N) <= 1 - c, i.e. N >=
    ln(1 - c) / ln(c): 58.4 at 95%, so 59; 1 at 50%."""
    assert runs_seeds(None, 0.95) == 59
    assert runs_seeds(None, 0.5) == 1
    assert runs_seeds(7, 0.95) == 7


@pytest.mark.parametrize("method", ["auto", "probes"])
def test_seeds_for_the_probe_search_are_refused_not_ignored(tmp_path: Path, method: str) -> None:
    """The probe search adds seeds in looks until decided (60, then 120, 240, 480 at 95%): a
    fixed --seeds has no place in it, and was silently dropped. It is refused (exit 2) before
    anything runs, saying what to use instead; whole runs take it."""
    out = tmp_path / "search"
    result = CliRunner().invoke(app, ["safe-leverage", str(WHOLE), "--budget", "0.1%", "--seeds", "10",
                                      "--method", method, "--out", str(out)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert ("--seeds 10: " + ("--method auto takes the probe search for this market, and it" if method == "auto"
                              else "the probe search")
            + " takes no fixed number of seeds: after a pilot of 2 it adds them in looks (60, then 120, 240, 480 in "
              "all, for 95% confidence) until the answer is decided; cap it with --max-runs, or use --method runs "
              "for 10 whole runs at each leverage") in said, said
    assert "Traceback" not in result.output and not out.exists()
    check_seeds("runs", 10, 0.95, "runs")  # whole runs: 10 a leverage
    check_seeds("probes", None, 0.95, "auto")  # no --seeds: the looks decide
    with pytest.raises(ValueError, match=r"--seeds 10: --method auto takes the bisection of whole runs for this "
                                         r"market, and it takes no fixed number of seeds: it adds them in looks"):
        check_seeds("bisect", 10, 0.95, "auto")


def _curve(mechanism: str, safe: float | None, above: float | None) -> dict[str, Any]:
    return {"vary": {"market.liquidation.mechanism": mechanism}, "safe_leverage": safe,
            "bracket": [safe, above]}


def test_each_curves_margin_is_set_beside_the_firsts() -> None:
    """Safe 10x against 12.5x: margin 1/12.5 = 8% against 10%, 20% less; 8x: 1/8 = 12.5%,
    25% more; a curve with no answer gets a dash; one at the top of its range is a bound."""
    lines = margin_comparison([_curve("whole", 10.0, 11.0), _curve("partial", 12.5, 13.0),
                               _curve("close_factor", 8.0, 9.0), _curve("dutch_auction", None, 2.0),
                               _curve("english_auction", 10.0, None)])
    assert lines[0].startswith("market.liquidation.mechanism = partial needs 20.0% less margin than "
                               "market.liquidation.mechanism = whole (1 / 12.5x against 1 / 10x)")
    assert "25.0% more margin than" in lines[1]
    assert lines[2].endswith("— (a curve without a safe leverage)")
    assert "the same margin as" in lines[3]
    assert lines[3].endswith("a bound: the boundary of market.liquidation.mechanism = english_auction lies above "
                             "the range")
    assert margin_comparison([_curve("whole", 10.0, 11.0)]) == []


def test_a_varied_value_is_named_in_toml_in_the_margin_lines_as_on_the_plot() -> None:
    """A table value (a latency scale per link, say) is one TOML inline table everywhere the
    page names it, not Python's dict beside the plot's TOML."""
    curves = [{"vary": {"network.scale": {"latency": 1.0}}, "safe_leverage": 10.0, "bracket": [10.0, 11.0]},
              {"vary": {"network.scale": {"latency": 2.0}}, "safe_leverage": 8.0, "bracket": [8.0, 9.0]}]
    (line,) = margin_comparison(curves)
    assert line.startswith('network.scale = {"latency" = 2.0} needs 25.0% more margin than '
                           'network.scale = {"latency" = 1.0}'), line
    assert "'latency'" not in line


@pytest.mark.slow
def test_partial_needs_the_margin_whole_does_where_a_gap_leaves_too_little_to_restore(tmp_path: Path) -> None:
    """``test_sweep.LEVERAGE``'s 30% gap (maintenance m = 10%, penalty p = 5%): at 70 a long at
    L keeps E = c (1 - 0.3 L) on notional N = 0.7 L c. A partial close of a share f leaves
    E - p f N >= m (1 - f) N when f >= (m N - E) / ((m - p) N), which is 1 or more once
    E <= p N, i.e. L >= 1 / 0.335 = 2.985: there it closes the whole position, as ``whole``
    does. Bad debt over 0.1% starts at L = 1 / 0.334 = 2.994 for both, so both brackets hold it
    and the search says partial needs the same margin. Without a fund or a cover the probe
    books carry partial closes: the search takes them for both curves."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, [
        "safe-leverage", str(scenario), "--budget", "0.1%", "--confidence", "50%", "--range", "1:5",
        "--workers", "2", "--out", str(tmp_path / "out"), "--vary", 'market.liquidation.mechanism="whole","partial"'])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())
    assert document["method"] == "probes" and document["method_note"] is None
    assert [curve["runs"] for curve in document["curves"]] == [2, 2]  # the first look at 50%: no seed differs
    whole, partial = document["curves"]
    for curve in (whole, partial):
        low, high = curve["bracket"]
        assert low <= 1 / 0.334 <= high and high / low < 1.1, curve["bracket"]
    assert partial["safe_leverage"] == whole["safe_leverage"]
    assert "whole runs" not in result.output
    assert ("market.liquidation.mechanism = partial needs the same margin as market.liquidation.mechanism = whole"
            in result.output)
    page = (tmp_path / "out" / "safe_leverage.html").read_text()
    assert 'id="margin-comparison"' in page and "needs the same margin as" in page
