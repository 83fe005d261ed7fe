"""CometBFT's 200-node QA testnet of v0.38, replayed: ``examples/cometbft-qa.toml`` at the
QA's loads, "against the testnet".

Place in the pipeline: a user's entry point beside ``msgstorm run``:
``python -m msgstorm.replays.cometbft_qa [PRESET] [--duration 30s]`` runs the preset at
400/s (the QA's c=1, r=400), at 200/s (c=1, r=200) and at 1/s (no load), reads each run's
summary and prints the published figures beside the runs' (``replays/against.py``).

The published figures are CometBFT's (the cometbft/cometbft repository,
docs/references/qa/CometBFT-QA-38.md and its img38/200nodes/ files, experiment
de676ecf-038e-443f-a26a-27915f29e312). ``FITTED`` names the one the preset was fitted to
(each hop's wait, from the rate without load); the rest are ``PREDICTED``: nothing in the
preset was chosen to give them. The load's costs in the preset were measured on live
validators here, not fitted to these figures, and so was its arrival: the QA's load tool sends
each second's transactions in one batch at the second's start, and they enter the node one
CheckTx apart (``burst`` arrivals, their spacing timed on a live validator by
``benchmarks/cometbft_entry.py``). The runs keep the preset's arrival and set its rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msgstorm.replays.against import Published, against, format_against
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

__all__ = ["FIGURES", "FITTED", "LOADS", "PREDICTED", "PRESET", "main", "measured_from"]

PRESET = Path(__file__).resolve().parents[3] / "examples" / "cometbft-qa.toml"
_REPORT = "CometBFT-QA-38.md"
_TABBED = "img38/200nodes/v038_report_tabbed.txt"

BLOCKS_LOADED = "blocks a minute, 400 tx/s"
LATENCY_MEAN = "latency mean, 400 tx/s (s)"
LATENCY_MAX = "latency max, 400 tx/s (s)"
LATENCY_HALF = "latency mean, 200 tx/s (s)"
MEMPOOL = "mempool mean, 400 tx/s (transactions)"
BLOCKS_EMPTY = "blocks a minute, no load"

FIGURES = (
    Published.within(BLOCKS_LOADED, 20.0, 0.15, f"{_REPORT} ('around 20 blocks/minute'), img38/200nodes/block_rate.png"),
    Published.within(LATENCY_MEAN, 3.499, 0.15, f"{_TABBED} (c=1, r=400)"),
    Published.within(LATENCY_MAX, 10.05, 0.15, f"{_TABBED} (c=1, r=400)"),
    Published.within(LATENCY_HALF, 1.860, 0.15, f"{_TABBED} (c=1, r=200)"),
    Published(MEMPOOL, 1750.0, 1000.0, 2500.0, f"{_REPORT} ('mostly oscillates between 1000 and 2500')"),
    # block_rate.png's average once the load stopped, read by eye: 33 to 36.
    Published.within(BLOCKS_EMPTY, 34.5, 0.15, "img38/200nodes/block_rate.png after the load (33 to 36, by eye)"),
)
FITTED = (BLOCKS_EMPTY,)
PREDICTED = (BLOCKS_LOADED, LATENCY_MEAN, LATENCY_MAX, LATENCY_HALF, MEMPOOL)
LOADS = {"loaded": "400/s", "half": "200/s", "empty": "1/s"}  # the runs, by the rate sent


def _blocks_a_minute(summary: Mapping[str, Any]) -> float | None:
    interval = (summary.get("consensus") or {}).get("interval_ms") or {}
    mean = interval.get("mean")
    return 60_000 / mean if mean else None


def _latency_s(summary: Mapping[str, Any], key: str) -> float | None:
    value = (summary.get("latency_ms") or {}).get(key)
    return None if value is None else value / 1000


def measured_from(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """Each figure of the runs' summaries (keys of ``LOADS``): blocks a minute is 60 s over the
    mean interval; latency from ``t_intended``; the mempool, the mean over time of the
    messages received and not yet in a block (the summary's queue depth)."""
    loaded, half, empty = summaries["loaded"], summaries["half"], summaries["empty"]
    return {
        BLOCKS_LOADED: _blocks_a_minute(loaded),
        LATENCY_MEAN: _latency_s(loaded, "mean"),
        LATENCY_MAX: _latency_s(loaded, "max"),
        LATENCY_HALF: _latency_s(half, "mean"),
        MEMPOOL: (loaded.get("queue") or {}).get("mean_depth"),
        BLOCKS_EMPTY: _blocks_a_minute(empty),
    }


def table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The "against the testnet" table of three runs' summaries."""
    rows = against(FIGURES, measured_from(summaries), FITTED, PREDICTED)
    return format_against(rows, "against the testnet (CometBFT v0.38 QA, 200 nodes)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msgstorm.replays.cometbft_qa", description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", nargs="?", type=Path, default=PRESET)
    parser.add_argument("--duration", help="run.duration of each run (the preset's: 90s)")
    parser.add_argument("--out", type=Path, help="a directory for the three runs (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="cometbft-qa-"))
    summaries: dict[str, Mapping[str, Any]] = {}
    for name, rate in LOADS.items():
        sets = [f'agents[0].arrival.rate="{rate}"'] + ([f'run.duration="{args.duration}"'] if args.duration else [])
        scenario = load_scenario(args.preset, sets)
        result = run(scenario, out / name, overwrite=True, write_report=False)
        summaries[name] = result.summary
        print(f"{name} ({rate}): {out / name}", file=sys.stderr)
    print(table(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
