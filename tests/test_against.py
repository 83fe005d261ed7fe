"""Against the day (analysis/against.py, report/against.py, ``msgstorm against``), the
published figures' roles and bands (``PublishedSpec``) and the keepers' raised ceilings
(``CapRaise``): a fitted figure is never counted as agreement."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from conftest import shared_run
from typer.testing import CliRunner

from msgstorm import load_scenario, run
from msgstorm.analysis.against import against_rows
from msgstorm.analysis.summary_model import PublishedFigures, Summary
from msgstorm.cli import app
from msgstorm.commands.common import out
from msgstorm.report.against import market_against_rows
from msgstorm.report.market import market_section
from msgstorm.scenario import ScenarioError
from msgstorm.scenario.market import KeeperSpec, PublishedSpec

ROOT = Path(__file__).resolve().parent.parent
DOCS, EXAMPLES = ROOT / "docs", ROOT / "examples"
S = 1_000_000_000


def test_a_raised_ceiling_applies_from_its_time() -> None:
    """1.2 x a base fee of 200 is 240: capped at 150 before 15 h, at 1,000 from it; a fixed
    fee does not move with the base fee."""
    spec = KeeperSpec(fee_aware=True, fee_multiple=1.2, fee_cap=150.0, cap_raised=[{"at": "15h", "cap": 1000.0}])
    assert spec.cap_at(0) == 150.0 and spec.cap_at(15 * 3600 * S - 1) == 150.0
    assert spec.cap_at(15 * 3600 * S) == 1000.0
    assert spec.fee_at(200.0, 14 * 3600 * S) == 150.0
    assert spec.fee_at(200.0, 16 * 3600 * S) == pytest.approx(240.0)
    assert spec.fee_at(None, 16 * 3600 * S) == spec.fee
    assert KeeperSpec(fee=20.0).fee_at(200.0, 16 * 3600 * S) == 20.0


@pytest.mark.parametrize(("steps", "fee_aware", "words"), [
    ([{"at": "15h", "cap": 1000.0}, {"at": "12h", "cap": 500.0}], True, "increasing 'at'"),
    ([{"at": "15h", "cap": 1000.0}], False, "only a fee_aware keeper"),
])
def test_a_raised_ceiling_is_refused_when_it_cannot_apply(steps: list[dict[str, object]], fee_aware: bool,
                                                          words: str) -> None:
    with pytest.raises(ValueError, match=words):
        KeeperSpec(fee_aware=fee_aware, cap_raised=steps)


def test_a_ceiling_raised_out_of_order_is_named_with_its_file_line_and_keeper(tmp_path: Path) -> None:
    text = (EXAMPLES / "black-thursday-2020.toml").read_text()
    step = '[[market.keepers.cap_raised]]\nat = "15h"'
    assert step in text
    path = tmp_path / "black-thursday-2020.toml"
    path.write_text(text.replace(step, '[[market.keepers.cap_raised]]\nat = "16h"\ncap = 500.0\n\n' + step))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    line = next(number for number, row in enumerate(text.splitlines(), 1) if row.startswith('name = "keepers"')) - 1
    assert f"black-thursday-2020.toml:{line}: market.keepers[1]: cap_raised: expected steps in increasing 'at'" in message
    assert "got at = 57600 s, 54000 s" in message


def _published(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"zero_bid_share": "36%", "zero_bid_units": 62_890.0, "deficit": 5_670_000.0,
                               "source": "Whiterabbit", "fitted": ["zero_bid_units"],
                               "checked": ["zero_bid_share", "deficit"],
                               "bands": {"zero_bid_units": [60_000.0, 66_000.0], "zero_bid_share": ["25%", "45%"],
                                         "deficit": [4_000_000.0, 6_650_000.0]}}
    return {**base, **changes}


def test_a_bands_percentages_read_as_shares() -> None:
    assert PublishedSpec(**_published()).bands["zero_bid_share"] == (0.25, 0.45)


@pytest.mark.parametrize(("changes", "words"), [
    ({"checked": ["zero_bid_share", "deficit", "zero_bid_units"]}, "a figure fitted is not a check: zero_bid_units"),
    ({"checked": ["zero_bid_shares"]}, "unknown figure 'zero_bid_shares'"),
    ({"checked": ["zero_bid_value"]}, "'zero_bid_value' names a figure the section does not give"),
    ({"bands": {"zero_bid_units": [60_000.0, 66_000.0], "zero_bid_share": ["25%", "45%"]}},
     "'deficit' is checked and needs a band"),
    ({"bands": {"zero_bid_units": [66_000.0, 60_000.0], "zero_bid_share": ["25%", "45%"],
                "deficit": [4e6, 6.65e6]}}, "expected low <= high"),
])
def test_published_roles_and_bands_are_checked(changes: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        PublishedSpec(**_published(**changes))


def test_the_file_and_line_of_a_figure_both_fitted_and_checked_are_named(tmp_path: Path) -> None:
    text = (EXAMPLES / "black-thursday-2020.toml").read_text()
    fitted = next(line for line in text.splitlines() if line.startswith("fitted = "))
    checked = next(line for line in text.splitlines() if line.startswith("checked = "))
    both = checked.replace("checked = [", "checked = [" + fitted.split("[")[1].split(",")[0].rstrip("]") + ", ")
    path = tmp_path / "black-thursday-2020.toml"
    path.write_text(text.replace(checked, both))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "black-thursday-2020.toml" in message and "market.liquidation.published" in message
    assert "a figure fitted is not a check" in message


def test_the_rows_mean_range_and_within_and_a_fit_is_never_agreement() -> None:
    """Two runs: zero-bid shares 0.30 and 0.40 (mean 0.35, inside 25-45%), deficits 3.0M and
    4.6M (mean 3.8M, below 4.0M: not within); the fitted units inside their band, yet within
    is None (shown, not agreement)."""
    published = PublishedFigures.model_validate(PublishedSpec(**_published()).model_dump())
    runs: list[dict[str, float | None]] = [
        {"zero_bid_share": 0.30, "zero_bid_units": 61_000.0, "deficit": 3_000_000.0},
        {"zero_bid_share": 0.40, "zero_bid_units": 64_000.0, "deficit": 4_600_000.0}]
    rows = {row.figure: row for row in against_rows(published, runs)}
    assert [row.figure for row in against_rows(published, runs)] == ["zero_bid_units", "zero_bid_share", "deficit"]
    share, deficit, units = rows["zero_bid_share"], rows["deficit"], rows["zero_bid_units"]
    assert (share.mean, share.low, share.high) == (pytest.approx(0.35), 0.30, 0.40) and share.within is True
    assert deficit.mean == pytest.approx(3_800_000.0) and deficit.within is False
    assert units.role == "fitted" and units.band == (60_000.0, 66_000.0) and units.within is None
    assert share.source == "Whiterabbit" and share.published == 0.36


def _role_lists(text: str) -> tuple[list[str], list[str]]:
    published = tomllib.loads(text)["market"]["liquidation"]["published"]
    return published["fitted"], published["checked"]


def test_black_thursday_2020_keeps_its_fit_apart_from_its_check() -> None:
    """The example fits to some figures and checks others, disjoint, and docs/examples.md
    names the same lists; the zero-bid share, the value won at zero and the deficit are
    checked, never fitted."""
    fitted, checked = _role_lists((EXAMPLES / "black-thursday-2020.toml").read_text())
    assert fitted and checked and not set(fitted) & set(checked)
    assert {"zero_bid_share", "zero_bid_value", "deficit"} <= set(checked)
    page = (DOCS / "examples.md").read_text()
    section = page[page.index("## 12 March 2020 replayed"):]
    section = section[:section.index("\n## ", 1)]
    assert f"Fitted: {', '.join(f'`{name}`' for name in fitted)}." in section
    assert f"Checked: {', '.join(f'`{name}`' for name in checked)}." in section


def test_msgstorm_against_prints_the_mean_and_range_over_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two seeds of a small English-auction market with a published zero-bid share (every
    lot goes at 0: one zero bidder, no other keeper): the table says 100.0% for both, the
    band and "no"; exit 1 with --fail-outside."""
    published = ('market.liquidation.published={zero_bid_share="50%", source="a test", checked=["zero_bid_share"], '
                 'bands={zero_bid_share=["40%", "60%"]}}')
    overrides = ['market.liquidation={mechanism="english_auction", ttl="1s", tau="5s", beg="3%", keeper_share=0}',
                 'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]', "market.keepers.0.discount=1"]
    dirs = []
    for seed in (1, 2):
        dirs.append(str(run(load_scenario(str(EXAMPLES / "leverage-latency.toml"),
                                          [*overrides, published, f"run.seed={seed}"]),
                            tmp_path / f"run-{seed}", write_report=False).run_dir))
    monkeypatch.setattr(out, "width", 200)  # one line a row
    result = CliRunner().invoke(app, ["against", *dirs])
    assert result.exit_code == 0, result.output
    assert "against the day (mean and range over 2 runs)" in result.output
    row = next(line for line in result.output.splitlines() if "zero-bid share of lots" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == ["zero-bid share of lots", "100.0% (100.0% to 100.0%)", "50.0% (a test)", "40.0% to 60.0%", "no",
                     "predicted"]
    assert CliRunner().invoke(app, ["against", "--fail-outside", *dirs]).exit_code == 1
    # The page's market section carries the same row (one run: no range).
    page = market_section(Summary.model_validate_json((Path(dirs[0]) / "summary.json").read_text()))
    assert ('<table id="against-table">' in page and "<td>zero-bid share of lots</td><td>100.0%</td>"
            "<td>50.0% (a test)</td><td>40.0% to 60.0%</td><td>no</td><td>predicted</td>" in page)


@pytest.mark.slow
def test_black_thursday_2020_over_five_seeds_is_within_every_checked_band(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The day replayed with seeds 2020 to 2024: the mean of each checked figure (zero-bid
    share of lots 25-45%, value taken at a zero bid within 30% of $8.32M, 1,000 to 2,000
    lots won at zero, the largest zero bidder's share of their ETH 42.9-52.5%, deficit
    4.0-6.65M DAI) is within its band; the fitted ones are shown but not judged; every run's
    prices reach the bars' low, $101.01, its lots are at most 50 ETH and its money adds up
    to the DAI (``assert_lots_balance``); and the table docs/examples.md shows is what
    ``msgstorm against`` prints of these runs. About 5 minutes."""
    import pyarrow.compute as pc
    from test_docs import TERMINAL_COLUMNS, lines_not_shown
    from test_market_venue import assert_lots_balance

    from msgstorm.history import read_history

    markets, dirs = [], []
    for seed in range(2020, 2025):
        scenario = load_scenario(EXAMPLES / "black-thursday-2020.toml", [f"run.seed={seed}"])
        # The example's own seed is the tour's run (tests/test_docs.py) and the books' (test_market_venue.py).
        result = shared_run(scenario) if seed == 2020 else run(scenario, tmp_path / f"run-{seed}", write_report=False)
        market = Summary.model_validate(result.summary).market
        assert market is not None
        markets.append(market)
        dirs.append(str(result.run_dir))
        history = read_history(result.run_dir)
        prices = history.table("prices").column("price").to_pylist()
        assert min(prices) == 101.01
        assert assert_lots_balance(history, result.summary, 0.13) == market.venue.auctions.lots  # type: ignore[union-attr]
        assert max(history.table("venue").column("amount").filter(  # every lot at most ETH-A's lump, 50 ETH
            pc.equal(history.table("venue").column("kind"), "lot")).to_pylist()) <= 50.0
    rows = {row.figure: row for row in market_against_rows(markets)}
    checked = {figure: row.within for figure, row in rows.items() if row.role == "checked"}
    assert checked == {"zero_bid_share": True, "zero_bid_value": True, "zero_bid_lots": True,
                       "top_zero_bidder_share": True, "deficit": True}
    assert all(row.within is None for row in rows.values() if row.role == "fitted")
    monkeypatch.setattr(out, "width", TERMINAL_COLUMNS)
    printed = CliRunner().invoke(app, ["against", *dirs])
    assert printed.exit_code == 0, printed.output
    block = re.search(r"```\n\$ msgstorm against runs/bt\n(.*?)```", (DOCS / "examples.md").read_text(), re.S)
    assert block is not None, "no against table of the sweep in docs/examples.md"
    lines = [line.rstrip() for line in printed.output.splitlines()]
    assert lines_not_shown(block.group(1).splitlines(), lines) == [], printed.output


def test_the_zero_bid_lots_and_the_largest_bidders_share_are_counted_and_shown() -> None:
    """Two runs: 1,100 and 1,300 lots won at zero (mean 1,200, inside "over 1,000": 1,000 to
    2,000) and the largest zero bidder's share 40% and 44% (mean 42%, below 42.9%: not
    within); the table prints the count without a unit and the share as a percentage."""
    from msgstorm.report.against import against_cells

    published = PublishedFigures.model_validate(PublishedSpec(
        zero_bid_lots=1_000, top_zero_bidder_share="47.7%", source="the day",
        checked=["zero_bid_lots", "top_zero_bidder_share"],
        bands={"zero_bid_lots": [1_000, 2_000], "top_zero_bidder_share": ["42.9%", "52.5%"]}).model_dump())
    runs: list[dict[str, float | None]] = [{"zero_bid_lots": 1_100.0, "top_zero_bidder_share": 0.40},
                                           {"zero_bid_lots": 1_300.0, "top_zero_bidder_share": 0.44}]
    rows = {row.figure: row for row in against_rows(published, runs)}
    assert rows["zero_bid_lots"].mean == 1_200.0 and rows["zero_bid_lots"].within is True
    assert rows["top_zero_bidder_share"].mean == pytest.approx(0.42) and rows["top_zero_bidder_share"].within is False
    cells = against_cells(list(rows.values()), "ETH", "DAI")
    assert cells[0] == ["lots won at a zero bid", "1,200 (1,100 to 1,300)", "1,000 (the day)", "1,000 to 2,000", "yes",
                        "predicted"]
    assert cells[1] == ["largest zero bidder's share", "42.0% (40.0% to 44.0%)", "47.7% (the day)",
                        "42.9% to 52.5%", "no", "predicted"]
