"""The terminal summary, read back as printed (rich at a fixed width, no colour)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from test_report_compare import hand_summary  # a whole summary.json, the given sections laid over

from msgstorm.analysis.summary_model import Summary
from msgstorm.report.terminal import print_summary

MARKET = {"accounts": 10_000, "open_interest": 1_069_258_733.0,
          "liquidations": {"eligible": 8327, "triggered": 8327, "executed": 1756, "late": 1756, "no_op": 5535,
                           "not_attempted": 0, "messages": 41_635},
          "liquidation_delay_ms": {"p50": 65_147.169, "p99": 66_408.668, "max": 66_408.668,
                                   "split": {"oracle": 48.064, "keeper": 232.138, "messaging": 64_000.0}},
          "bad_debt": {"absolute": 158_530_597.31, "pct_of_open_interest": 14.826, "accounts": 7416},
          "price_staleness_ms": {"p50": 10_200.0, "p99": 49_200.0, "max": 50_000.0}}


def _printed(summary: dict[str, Any]) -> list[str]:
    buffer = io.StringIO()
    typed = Summary.model_validate(hand_summary(**{"scenario": "x", "seed": 1, "target": "sim", **summary}))
    print_summary(typed, Console(file=buffer, width=200))
    return buffer.getvalue().splitlines()


def _row(lines: list[str], label: str) -> int:
    found = [i for i, line in enumerate(lines) if line.startswith(f"│ {label} ")]
    assert found, f"no row {label!r} in:\n" + "\n".join(lines)
    return found[0]


def test_bad_debt_and_liquidations_lead_the_headline() -> None:
    lines = _printed({"offered_rate_per_s": 5350.0, "throughput_per_s": 2062.0, "market": MARKET,
                      "latency_ms": {"p50": 15_196.447, "p99": 65_230.839, "p999": 66_100.0}})
    bad, liquidations = _row(lines, "bad debt"), _row(lines, "liquidations")
    assert _row(lines, "throughput") < bad < liquidations < _row(lines, "latency p50 / p99 / p99.9")
    assert "158,530,597 (14.826% of open interest 1,069,258,733), 7,416 accounts" in lines[bad]
    assert "executed 1,756" in lines[liquidations]


def test_long_durations_read_in_seconds() -> None:
    lines = _printed({"latency_ms": {"p50": 15_196.447, "p99": 65_230.839, "p999": 66_100.0, "max": 1.5,
                                     "mean": 0.25}, "market": MARKET})
    assert lines[_row(lines, "latency p50 / p99 / p99.9")].rstrip(" │").endswith("15.2 s / 65.2 s / 66.1 s")
    assert lines[_row(lines, "latency max / mean")].rstrip(" │").endswith("1.5 ms / 0.25 ms")
    assert "oracle 48.064 ms, keeper 232.138 ms, messaging 64 s" in lines[_row(lines, "delay split (mean)")]
    assert not any("15,196" in line or "65,147" in line for line in lines)


def test_an_slos_value_is_printed_in_its_thresholds_unit() -> None:
    slos = [{"name": "latency.p99", "verdict": "fail", "value": 1644.841, "threshold": "< 1s"},
            {"name": "stage.queue_wait.p99", "verdict": "fail", "value": 0.4, "threshold": "< 200us"},
            {"name": "capacity.knee_rate", "verdict": "fail", "value": 2890.101, "threshold": ">= 3000/s"},
            {"name": "loss_rate", "verdict": "pass", "value": 0.0125, "threshold": "< 2%"},
            {"name": "desync.episodes", "verdict": "fail", "value": 3, "threshold": "== 0"},
            {"name": "latency.p50", "verdict": "unknown", "value": None, "threshold": "< 1s"}]
    lines = _printed({"slo": slos})
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines[[line.strip() for line in lines].index("SLOs") + 4:-1]]
    assert [row[1:3] for row in rows] == [["< 1s", "1.64 s"], ["< 200us", "0.4 ms"], [">= 3000/s", "2,890/s"],
                                          ["< 2%", "1.25%"], ["== 0", "3"], ["< 1s", "—"]]


def _value(lines: list[str], label: str) -> str:
    return lines[_row(lines, label)].split("│")[2].strip()


def test_late_reads_as_past_the_bankruptcy_price_beside_a_long_delay() -> None:
    # black-thursday-2020: liquidations hours late by the delay, yet none executed after the
    # true price crossed the bankruptcy price: "late 0" beside 4,861 s read false.
    market = {**MARKET, "liquidations": {"eligible": 2112, "triggered": 1587, "executed": 1587, "late": 0,
                                         "no_op": 879, "not_attempted": 525, "messages": 2466},
              "liquidation_delay_ms": {"p50": 4_861_000.0, "p99": 7_284_000.0, "max": 7_284_000.0}}
    row = _value(_printed({"market": market}), "liquidations")
    assert row == ("eligible 2,112, triggered 1,587, executed 1,587 (0 past their bankruptcy price), no-op 879, "
                   "not attempted 525")
    assert "late" not in row


def test_bad_debt_says_what_the_venue_covered_before_it() -> None:
    # venue-close-factor: no bad debt left because 1,129,163 was socialised.
    venue = {"liquidation_fee": 744_861.3, "keeper_fee": 744_861.3, "insurance_fee": 0.0,
             "insurance_fund": {"start": 0.0, "end": 0.0, "used": 0.0}, "deleveraged": 0.0,
             "socialised": 1_129_163.0, "bad_debt": 0.0, "partial_calls": 2351}
    market = {**MARKET, "open_interest": 231_468_852.0, "venue": venue,
              "bad_debt": {"absolute": 0.0, "pct_of_open_interest": 0.0, "accounts": 0}}
    assert _value(_printed({"market": market}), "bad debt") == (
        "0 (after 1,129,163 socialised; 0% of open interest 231,468,852), 0 accounts")
    # venue-partial: the fund and deleveraging covered it; nothing covered: no "after".
    venue = {**venue, "insurance_fund": {"start": 1000.0, "end": 20_021.56, "used": 127_769.3},
             "deleveraged": 22_108.22, "socialised": 0.0}
    assert _value(_printed({"market": {**market, "venue": venue}}), "bad debt") == (
        "0 (after 127,769.3 from the fund, 22,108.22 deleveraged; 0% of open interest 231,468,852), 0 accounts")
    assert _value(_printed({"market": MARKET}), "bad debt") == (
        "158,530,597 (14.826% of open interest 1,069,258,733), 7,416 accounts")


def test_lost_messages_and_lost_receipts_read_apart() -> None:
    # A live run whose consumers missed 841 receipts of messages that some consumer got or
    # the broker acked: no message is lost, 841 receipts are.
    delivery = {"fanout": True, "consumers": 2, "received": 19_159, "expected": 20_000, "duplicated": 0,
                "unexpected": 0, "reordered": 0, "stream": None,
                "lost": {"total": 841, "prefix": 0, "middle": 841, "postfix": 0, "acked": 0}}
    lines = _printed({"target": "nats", "messages": {"sent": 10_000, "committed": 10_000}, "delivery": delivery})
    assert _value(lines, "messages") == ("sent 10,000, sequenced 0, committed 10,000, dropped 0, rejected 0, "
                                         "lost 0 (neither acked nor received), pending 0, unsent 0")
    assert _value(lines, "delivery (received / expected)").startswith(
        "19,159 / 20,000; receipts lost 841 (prefix 0, middle 841, postfix 0)")
    simulated = _printed({"messages": {"sent": 10, "lost": 2}})
    assert "lost 2, pending" in _value(simulated, "messages")  # no audit beside it: no hint


def test_faults_show_how_long_recovery_took_and_copies_each_node() -> None:
    lines = _printed({"faults": [
        {"fault_id": 0, "kind": "crash", "start_s": 3.0, "end_s": 6.0, "pre_fault_p99_ms": 2.5, "recovery_s": 1.234},
        {"fault_id": 1, "kind": "restart", "start_s": 9.0, "end_s": 10.0, "pre_fault_p99_ms": 2.0, "recovery_s": None},
        {"fault_id": 2, "kind": "pause", "start_s": 12.0, "end_s": None, "pre_fault_p99_ms": None, "recovery_s": None}],
        "delivery": {"fanout": False, "consumers": 1, "received": 10, "expected": 10, "duplicated": 0,
                     "unexpected": 0, "reordered": 0, "stream": None,
                     "lost": {"total": 0, "prefix": 0, "middle": 0, "postfix": 0, "acked": 0}, "nodes": {
            "nats-server-0": {"stored": 14_000, "acked_missing": 0, "duplicated": 0, "unexpected": 0},
            "nats-server-1": {"stored": 13_990, "acked_missing": 10, "duplicated": 0, "unexpected": 0},
            "nats-server-2": None}}})
    text = "\n".join(lines)
    assert "faults" in text and "recovered after" in text
    crash = next(line for line in lines if "crash" in line)
    assert "2.5 ms" in crash and crash.rstrip(" │").endswith("1.23 s")
    assert next(line for line in lines if "restart" in line).rstrip(" │").endswith("not recovered")
    assert next(line for line in lines if "pause" in line).rstrip(" │").endswith("still active")
    assert "stream copies, node by node" in text
    one = next(line for line in lines if "nats-server-1" in line)
    assert "13,990" in one and " 10 " in one
    assert "not read" in next(line for line in lines if "nats-server-2" in line)


def test_a_jetstream_refusal_reads_as_its_status() -> None:
    lines = _printed({"target": "jetstream", "connections": {
        "disconnects": 0, "reconnects": 0, "errors": 1, "clients": {}, "servers_exited": [],
        "incidents": [{"t_s": 3.2, "kind": "client_error", "client": "publisher",
                       "error": "NATS/1.0 503\r\nNats-Subject: msgstorm.orders\r\n\r\n"}]}})
    said = next(line for line in lines if "publisher" in line)
    assert "503 no responders" in said
    assert not any("NATS/1.0" in line or "Nats-Subject" in line for line in lines)


def _group(sent: int, dropped: int) -> dict[str, Any]:
    """A kind's summary.json entry: what was not dropped committed."""
    return {"sent": sent, "committed": sent - dropped, "dropped": dropped, "rejected": 0, "lost": 0, "pending": 0,
            "unsent": 0, "latency_ms": {"p50": 1.0, "p99": 2.0}}


def test_a_throttle_says_what_it_shed_apart_from_the_failure_threshold() -> None:
    lines = _printed({"failure_threshold": {"rate_per_s": 8041.0, "reason": "overload", "t_ns": 0},
                      "by_kind": {"spam": _group(sent=47_656, dropped=33_913), "quote": _group(sent=9693, dropped=2863)},
                      "control": {"throttle": {"decisions": 31, "output": "admitted_share", "lowest": 0.0,
                                               "highest": 1.0, "last": 1.0, "shed": 36_776,
                                               "sheds": ["quote", "spam"]}}})
    row = lines[_row(lines, "self-healing: throttle")]
    assert "shed 36,776 arrivals on purpose (quote 2,863 of 9,693, spam 33,913 of 47,656 dropped)" in row
    assert "admitted share fell to 0, 1 at the end; 31 decisions" in row
    assert "(overload)" in lines[_row(lines, "failure threshold")]


def test_a_check_that_is_not_valid_is_printed_with_its_detail_and_a_valid_one_is_not() -> None:
    lines = _printed({"checks": [
        {"name": "conservation", "verdict": "valid", "detail": "10 messages, one row and one status each"},
        {"name": "safety", "verdict": "invalid", "detail": "conflicting blocks finalised at 1 height: height 3"},
    ]})
    assert any(line.startswith("│ safety ") and "invalid" in line and "height 3" in line for line in lines), lines
    assert not any("conservation" in line for line in lines)
    assert not any("checks not valid" in line for line in _printed({"checks": [
        {"name": "conservation", "verdict": "valid", "detail": "ok"}]}))


def test_the_base_fee_path_is_its_min_max_and_last_on_a_fee_chain_only() -> None:
    lines = _printed({"base_fee": {"min": 0.586, "max": 8.373, "last": 1.001, "unit": "gwei"}})
    row = lines[_row(lines, "base fee min / max / last")]
    assert row.rstrip(" │").endswith("0.586 / 8.373 / 1.001 gwei")
    assert not [line for line in _printed({"base_fee": None}) if line.startswith("│ base fee")]


def test_a_markets_amounts_carry_its_currency_and_an_auctions_lots_their_instrument() -> None:
    """12 March 2020's english auctions: the lots in ETH, the deficit and the published one in
    DAI, bad debt and open interest in DAI (they read as bare numbers before)."""
    published = {"zero_bid_share": 0.36, "zero_bid_units": 62_890.0, "returned_share": None, "deficit": 5_670_000.0,
                 "source": "Whiterabbit"}
    venue = {"liquidation_fee": 919_994.69, "keeper_fee": 0.0, "insurance_fee": 919_994.69,
             "insurance_fund": {"start": 0.0, "end": 0.0, "used": 919_994.69}, "deleveraged": 0.0, "socialised": 0.0,
             "bad_debt": 11_606_113.0, "partial_calls": 0,
             "auctions": {"unit": "ETH", "lots": 1587, "zero_bid_lots": 1127, "zero_bid_units": 126_225.64,
                          "units": 186_166.48, "returned_share": 0.0515, "published": published}}
    market = {**MARKET, "currency": "DAI", "venue": venue, "slippage_bps": {"p50": None, "p99": None}}
    lines = [line.rstrip(" │") for line in _printed({"market": market})]
    assert lines[_row(lines, "bad debt")].endswith(
        "158,530,597 DAI (after 919,994.69 DAI from the fund; 14.826% of open interest 1,069,258,733 DAI), "
        "7,416 accounts")
    assert lines[_row(lines, "english auctions")].endswith(
        "1,587 lots, 1,127 at a zero bid (126,225.64 of 186,166.48 ETH), collateral returned 5.15%, deficit "
        "11,606,113 DAI")
    assert lines[_row(lines, "published for the day")].endswith(
        "zero bids 36.00% of lots, zero-bid 62,890 ETH, deficit 5,670,000 DAI (Whiterabbit)")
    assert "fund used 919,994.69 DAI" in lines[_row(lines, "venue losses")]
    unnamed = [line.rstrip(" │") for line in _printed({"market": {**MARKET, "venue": {**venue, "auctions": {
        **venue["auctions"], "unit": None}}, "slippage_bps": {"p50": None, "p99": None}}})]
    assert unnamed[_row(unnamed, "english auctions")].endswith(
        "(126,225.64 of 186,166.48 units), collateral returned 5.15%, deficit 11,606,113")


def test_the_failure_row_names_the_interval_and_the_faults_active_in_it() -> None:
    """A window's threshold (no ramp) says the window's start; a ramp's, the step's; a fault
    active there by id and kind."""
    window = {"rate_per_s": 5.967, "reason": "fault", "t_ns": 1_200_000_000_000,
              "faults": [{"fault_id": 0, "kind": "sequencer_outage"}]}
    lines = _printed({"capacity": None, "failure_threshold": window})
    assert lines[_row(lines, "failure threshold")].rstrip(" │").endswith(
        "5.97/s (fault) in the window from 20 min 0 s, during fault 0 (sequencer_outage)")
    step = {"rate_per_s": 5995.667, "reason": "overload", "t_ns": 15_000_000_000}
    lines = _printed({"capacity": {"knee_rate_per_s": 5039.667, "method": "step ramp"}, "failure_threshold": step})
    assert lines[_row(lines, "failure threshold")].rstrip(" │").endswith("5,996/s (overload) in the ramp step from 15 s")


def test_the_knee_row_says_a_run_without_a_ramp_has_none() -> None:
    lines = _printed({"capacity": None})
    assert lines[_row(lines, "capacity (knee)")].rstrip(" │").endswith("no ramp: no knee")
    lines = _printed({"capacity": {"knee_rate_per_s": 235.333, "method": "step ramp", "limited_by": None}})
    assert lines[_row(lines, "capacity (knee)")].rstrip(" │").endswith("235/s")


def test_the_knee_row_says_a_ramp_that_passed_every_step_reached_no_knee() -> None:
    """Every step passed: the last step's rate is only a lower bound, and nothing limited the
    ramp; a live one on a machine its last step kept busy says that, not "limited by"."""
    lines = _printed({"capacity": {"knee_rate_per_s": 2963.0, "knee_reached": False, "method": "step ramp"}})
    assert lines[_row(lines, "capacity (knee)")].rstrip(" │").endswith("≥ 2,963/s, no knee reached")
    at_limit = {"step": 5, "offered_per_s": 196.0, "send_lag_p50_ms": 0.016, "cpu_busy": {"publisher": 0.2},
                "machine_cpus": 2, "machine_busy": 1.98}
    said = " ".join(" ".join(_printed({"capacity": {"knee_rate_per_s": 196.0, "knee_reached": False,
                                                    "method": "step ramp", "limited_by": "machine",
                                                    "at_limit": at_limit}})).split())
    assert "≥ 196/s, no knee reached; the machine's CPUs were busy at the last step" in said, said
    assert "limited by" not in said, said
    broker = " ".join(" ".join(_printed({"capacity": {"knee_rate_per_s": 196.0, "knee_reached": False,
                                                      "method": "step ramp", "limited_by": "broker",
                                                      "at_limit": at_limit}})).split())
    assert "≥ 196/s, no knee reached │" in broker and "limited by" not in broker, broker


def test_the_knee_row_names_a_machine_busy_with_other_work() -> None:
    at_limit = {"step": 4, "offered_per_s": 236.0, "send_lag_p50_ms": 0.4, "cpu_busy": {"publisher": 0.21,
                "anvil": 0.23}, "machine_cpus": 2, "machine_busy": 2.0}
    said = " ".join(" ".join(_printed({"capacity": {"knee_rate_per_s": 177.667, "method": "step ramp",
                                                    "limited_by": "machine", "at_limit": at_limit}})).split())
    assert "limited by the machine (its CPUs busy with other work)" in said, said
    assert "CPUs busy: publisher 0.21, anvil 0.23 of 2; the machine's CPUs busy: 2.00 of 2" in said, said
    # The machine's total is said whatever limited the knee: a broker's knee on a busy machine shows it.
    broker = " ".join(" ".join(_printed({"capacity": {"knee_rate_per_s": 177.667, "method": "step ramp",
                                                      "limited_by": "broker", "at_limit": {
                                                          **at_limit, "machine_busy": 1.42}}})).split())
    assert "limited by the broker" in broker and "the machine's CPUs busy: 1.42 of 2" in broker, broker


def _value_lines(lines: list[str], label: str) -> list[str]:
    """A headline row's value cell, line by line, as printed (a wrapped cell's continuation
    lines have an empty label)."""
    first = _row(lines, label)
    cell = [lines[first]]
    for line in lines[first + 1:]:
        if not line.startswith("│") or line.split("│")[1].strip():
            break
        cell.append(line)
    return [line.split("│")[2].strip() for line in cell]


def test_every_duration_reads_by_one_rule_and_keeps_its_unit_when_a_cell_wraps() -> None:
    """At 100 columns: 2,185.311 ms reads 2.19 s wherever it stands (a latency, a
    liquidation's delay and its split, a client's time down), and the connections row,
    wrapped, ends no line on a number whose unit went to the next."""
    delay = {**MARKET["liquidation_delay_ms"], "p50": 2185.311,
             "split": {"oracle": 49.177, "keeper": 189.344, "messaging": 2185.311}}
    def down(seconds: float) -> dict[str, Any]:
        return {"disconnects": 1, "down_s": seconds, "reconnect_attempts": 0}

    summary = {"scenario": "x", "seed": 1, "target": "nats", "market": {**MARKET, "liquidation_delay_ms": delay},
               "latency_ms": {"p50": 2185.311, "p99": 65_205.992, "p999": 66_100.0, "max": 70_000.0, "mean": 0.25},
               "connections": {"disconnects": 2, "reconnects": 2, "errors": 0, "servers_exited": [], "incidents": [],
                               "clients": {"publisher": down(2.185311), "consumer-1": down(0.5),
                                           "consumer-2": down(12.5), "consumer-3": down(65.205992)}}}
    buffer = io.StringIO()
    print_summary(Summary.model_validate(hand_summary(**summary)), Console(file=buffer, width=100))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    assert _value_lines(lines, "latency p50 / p99 / p99.9") == ["2.19 s / 65.2 s / 66.1 s"]
    assert _value_lines(lines, "liquidation delay p50 / p99 / max") == ["2.19 s / 66.4 s / 66.4 s"]
    assert _value_lines(lines, "delay split (mean)") == ["oracle 49.177 ms, keeper 189.344 ms, messaging 2.19 s"]
    connections = _value_lines(lines, "connections")
    assert len(connections) > 1  # the row wraps at this width
    assert " ".join(connections) == ("disconnects 2, reconnects 2, errors 0; down: publisher 2.19 s, consumer-1 "
                                     "500 ms, consumer-2 12.5 s, consumer-3 65.2 s")
    assert not any(line.split(" ")[0] in ("s", "ms", "s,", "ms,") for line in connections[1:]), connections
    assert not any("2185" in line or "2,185" in line or "65,205" in line for line in lines)


def test_a_summary_dictionary_that_does_not_fit_its_type_is_refused_naming_the_field() -> None:
    """Read by string keys, a misspelt ``max_depth`` printed an em dash; read through the
    summary's type it is refused, naming the section and the key."""
    import pydantic
    import pytest

    misspelt = hand_summary(scenario="x", queue={"max_depht": 3, "mean_depth": 1.5})
    with pytest.raises(pydantic.ValidationError, match=r"queue\.max_depht"):
        print_summary(misspelt, Console(file=io.StringIO(), width=200))
    lines = _printed({"queue": {"max_depth": 3, "mean_depth": 1.5}})
    assert lines[_row(lines, "in queue_wait max / mean")].split("│")[2].strip() == "3 / 1.5 (mean over time)"


def test_a_faults_start_and_end_past_a_minute_read_in_hours_and_minutes() -> None:
    """A day-long oracle fault ends at 86,400 s: "24 h 0 min 0 s", not "86,400 s"; one within
    the first minute keeps its seconds to the millisecond."""
    fault = {"fault_id": 0, "kind": "oracle", "start_s": 0.0, "end_s": 86_400.0, "pre_fault_p99_ms": None,
             "baseline_s": None, "no_baseline": {"reason": "nothing_before", "fault_id": None}, "recovery_s": None}
    short = {**fault, "fault_id": 1, "kind": "partition", "start_s": 6.00712, "end_s": 12.001}
    lines = _printed({"faults": [fault, short]})
    assert any(line.startswith("│  0 │ oracle    │     0 s │ 24 h 0 min 0 s │") for line in lines), lines
    assert any(line.startswith("│  1 │ partition │ 6.007 s │       12.001 s │") for line in lines), lines
