"""A chain run's page: its base fee per block drawn, and a live chain run's note saying what it observed."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_analysis_history import BASE_SCENARIO, MS, S, event, message, scenario_dict, write_history

from msgstorm.analysis import analyse
from msgstorm.history.reader import History
from msgstorm.report.figures import QUEUE_DEPTH_NAME
from msgstorm.report.html import render_run_report

# Four blocks, 500 ms apart, the base fee 1.0 -> 1.125 -> 1.265625 -> 1.107421875 (full, full,
# empty: +12.5%, +12.5%, -12.5%), 40, 40, 0 and 10 messages; the pool sampled twice.
FEES = [1.0, 1.125, 1.265625, 1.107421875]
MESSAGES = [40.0, 40.0, 0.0, 10.0]


def _chain_history(tmp_path: Path, target: str, mode: str = "eip1559") -> History:
    events: list[dict[str, Any]] = []
    for k, (fee, count) in enumerate(zip(FEES, MESSAGES, strict=True)):
        t = (k + 1) * 500 * MS
        events.append(event(t, "block_produced", node="anvil", value=count, height=k + 1))
        events.append(event(t, "base_fee", node="anvil", value=fee, height=k + 1))
    events += [event(400 * MS, "queue_depth", node="anvil", value=30.0), event(900 * MS, "queue_depth", node="anvil",
                                                                              value=55.0)]
    rows = [message(i, i * 20 * MS, latency_ns=300 * MS) for i in range(90)]
    scenario = scenario_dict(BASE_SCENARIO + f'\n[backpressure]\nmode = "{mode}"\n')
    return write_history(tmp_path, rows, events, scenario=scenario, t_end=3 * S, target=target)


def _figure(page: str, slug: str) -> dict[str, Any] | None:
    found = re.search(rf'<script type="application/json" id="fig-{slug}">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1)) if found else None


def test_a_live_chain_run_draws_its_base_fee_per_block_and_its_pool(tmp_path: Path) -> None:
    history = _chain_history(tmp_path, "anvil")
    page = render_run_report(history, analyse(history))
    fee = _figure(page, "base-fee")
    assert fee is not None
    traces = {trace["name"]: trace for trace in fee["data"]}
    assert traces["base fee"]["x"] == [0.5, 1.0, 1.5, 2.0] and traces["base fee"]["y"] == FEES
    assert traces["messages in the block"]["y"] == MESSAGES
    assert "in 2 blocks" in page and "from 1 to 1.107" in page  # rose twice; first and last, as drawn
    pool = _figure(page, "queue")
    assert pool is not None
    depth = next(trace for trace in pool["data"] if trace["name"] == QUEUE_DEPTH_NAME)
    assert max(depth["y"]) == 55.0
    note = re.search(r"A live run measures what a client sees: ([^<]*)", page)
    assert note is not None
    said = html.unescape(note.group(1))
    assert "the node's pool depth and each block's base fee" in said
    assert "It cannot see inside the node: no gossip validation backlog" in said


def test_a_broker_runs_page_still_says_it_has_no_queue_or_base_fee(tmp_path: Path) -> None:
    rows = [message(i, i * 20 * MS, latency_ns=2 * MS) for i in range(90)]
    history = write_history(tmp_path, rows, t_end=3 * S, target="nats")
    page = render_run_report(history, analyse(history))
    assert _figure(page, "base-fee") is None and _figure(page, "queue") is None
    assert "It cannot see inside the broker: no queue depth, base fee," in page


def test_a_simulated_chain_run_draws_its_base_fee_per_block_too(tmp_path: Path) -> None:
    history = _chain_history(tmp_path, "sim")
    page = render_run_report(history, analyse(history))
    fee = _figure(page, "base-fee")
    assert fee is not None and next(t for t in fee["data"] if t["name"] == "base fee")["y"] == FEES
    assert page.count('id="fig-queue"') == 1  # the simulator's own queue section, once


def test_a_simulated_run_without_eip1559_draws_no_base_fee_chart(tmp_path: Path) -> None:
    history = _chain_history(tmp_path, "sim", mode="unbounded")
    assert _figure(render_run_report(history, analyse(history)), "base-fee") is None


def test_the_base_fee_says_its_unit_gwei_or_the_nodes_fee_unit(tmp_path: Path) -> None:
    """A simulated chain's base fee is in gwei, an EVM node's in live.anvil.fee_unit_wei wei:
    the summary says which, and the page's axis and caption with it (they were bare numbers)."""
    history = _chain_history(tmp_path / "sim", "sim")
    analysis = analyse(history)
    assert analysis.result.base_fee is not None and analysis.result.base_fee.unit == "gwei"
    page = render_run_report(history, analysis)
    fee = _figure(page, "base-fee")
    assert fee is not None and fee["layout"]["yaxis"]["title"]["text"] == "base fee (gwei)"
    assert "from 1 to 1.107 gwei (at most 1.266)" in page
    from msgstorm.analysis.queue import fee_unit

    node = {"target": "anvil", "live": {"anvil": {"fee_unit_wei": 1}}}
    assert [fee_unit(node), fee_unit({"target": "anvil"}), fee_unit({"target": "sim"})] == ["wei", "gwei", "gwei"]
    assert fee_unit({"target": "anvil", "live": {"anvil": {"fee_unit_wei": 1000}}}) == "x 1,000 wei"


def test_past_what_a_screen_shows_each_bar_is_the_fullest_block_of_its_run_and_the_caption_says_so(
        tmp_path: Path) -> None:
    """5,000 blocks 10 ms apart, block k holding k % 7 messages and block 4,321 holding 500.
    Before, the caption said "Bars: each block's messages" over a chart with no bars (past
    2,000 blocks they were left out). Now 2,000 bars of runs of 2 or 3 blocks, each as tall
    as the fullest block of its run, and the caption says what they are."""
    events: list[dict[str, Any]] = []
    for k in range(5_000):
        count = 500.0 if k == 4_321 else float(k % 7)
        events += [event((k + 1) * 10 * MS, "block_produced", node="n0", value=count, height=k + 1),
                   event((k + 1) * 10 * MS, "base_fee", node="n0", value=1.0 + k / 5_000, height=k + 1)]
    scenario = scenario_dict(BASE_SCENARIO + '\n[backpressure]\nmode = "eip1559"\n')
    history = write_history(tmp_path, [message(i, i * 20 * MS, latency_ns=30 * MS) for i in range(100)], events,
                            scenario=scenario, t_end=51 * S)
    page = render_run_report(history, analyse(history))
    fee = _figure(page, "base-fee")
    assert fee is not None
    [bars] = [trace for trace in fee["data"] if trace["type"] == "bar"]
    assert len(bars["y"]) == 2_000 and max(bars["y"]) == 500.0 and bars["yaxis"] == "y2"
    starts = [(k * 5_000 + 1_999) // 2_000 for k in range(2_000)]  # each run's first block
    ends = [*starts[1:], 5_000]
    assert bars["y"] == [max(500.0 if k == 4_321 else float(k % 7) for k in range(a, b)) for a, b in zip(starts, ends)]
    assert sum(width for width in bars["width"]) == pytest.approx(0.9 * 5_000 * 0.01)  # the runs side by side
    caption = html.unescape(re.search(r'id="fig-base-fee">.*?</script><p class="note">([^<]*)</p>', page, re.S)[1])
    assert caption.endswith("Bars: the messages of the fullest block of each run of 2 or 3 consecutive blocks "
                            "(2,000 bars for 5,000 blocks).")
    few = _chain_history(tmp_path / "few", "sim")
    assert "in 2 blocks. Bars: each block's messages." in html.unescape(render_run_report(few, analyse(few)))
