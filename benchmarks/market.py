"""What the market costs the simulator: flash-crash with and without market agents.

    python benchmarks/market.py                 # flash-crash, 10,000 accounts, 20 keepers, an oracle
    python benchmarks/market.py --repeat 3      # median of 3 runs each, alternating
    python benchmarks/market.py --accounts 1000000 --only market
    python benchmarks/market.py --mechanisms none   # without the liquidation mechanisms' cases
    python benchmarks/market.py --mechanisms only   # only them
    python benchmarks/market.py --mechanisms only --clock cpu   # by the process's CPU time
    python benchmarks/market.py --smoke         # 200 accounts, 2 keepers, a 3 s crash, one pair each: CI's
    python benchmarks/market.py --black-thursday --mechanisms only --clock cpu   # + examples/black-thursday.toml
    python benchmarks/market.py --no-parts      # without each case's CPU split by part
    python benchmarks/market.py --smoke --black-thursday   # CI's: black-thursday cut to 1 s too
    python benchmarks/market.py --replay-2020 --mechanisms only --repeat 3   # + the 2020 replay
    python benchmarks/market.py --smoke --replay-2020 --mechanisms only      # CI's: the day cut to 20 min

Each liquidation mechanism (``[market.liquidation]``, ``market/liquidation.py``) and the
venue's books (a fund with auto-deleveraging, one with socialised loss) is timed on
examples/venue-partial.toml, a crash in which every mechanism acts (on flash-crash above the
congested chain lets few liquidations through), as a ratio over the same run with ``whole``,
the two alternating (the target: at most 1.5x). ``english_auction`` (Maker's flip sells a
vault's collateral) runs the example with longs only, against ``whole`` on the same accounts.

The peer is the same run without ``[market]``: the ratio is the market's wall time over the
plain one's (the target, for keepers racing for each account: at most 2.5x). Both run end to end (traffic, the loop, the history,
the analysis) into temporary directories, after an untimed warm-up run of each that loads
the compiled code from numba's cache. With ``--accounts`` in the millions, it also times one
price tick over every account against the accounts it crosses (the line index). ``--smoke``
runs every case small (flash-crash cut to 3 s with its crash at 1 s, 200 accounts and 2
keepers; one pair of each mechanism, not warmed up): that the script runs, not a measure.

Each case also prints where its CPU time goes, from one more run with timers on the methods
of each part of the simulator (``PARTS``; ``timing.CpuSplit``): the network (the gossip
kernel and links), the sequencer (intake, ordering, backpressure, block packing, the chain),
the market (the reactor and the venue's rules), the history (the recorder, the writer, the
market's rows), other (the event loop, traffic, analysis and report) and other threads (the
history writer's). The timers add a Python call to every method call, so the parts add up to
more than the timed runs: a split, not a timing.

``--replay-2020`` times examples/black-thursday-2020.toml (12 March 2020 against Maker's flip
auctions: 25 virtual hours, few messages) by the process's CPU time, and splits it with the
auctions (``AUCTIONS``) apart from the rest of the market. A run of it follows its events,
not its virtual hours: its state is sampled as it changes (``sim/changes.py``), and the
target is at most 5 s of CPU a run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from timing import CpuSplit  # noqa: E402

import msgstorm  # noqa: E402
from msgstorm.market.accounts import LineIndex, draw_accounts  # noqa: E402
from msgstorm.scenario import Scenario, parse_scenario  # noqa: E402
from msgstorm.sim.gossip import GossipState  # noqa: E402

MARKET = """
[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"

[[market.instruments]]
name = "ETH"
price = 2000.0
volatility = "100%/y"
shocks = [{{ at = "6s", fall = "25%", over = "8s" }}]

[market.oracle]
node = "us-east-1"
deviation = "0.5%"
fee = 100.0

[[market.accounts]]
count = {accounts}
leverage_median = 4.0
leverage_cap = 9.5
collateral = {{ dist = "lognormal", median = 10000.0, sigma = 1.0 }}
long_share = "80%"

[[market.keepers]]
count = {keepers}
reaction = {{ dist = "lognormal", median = "200ms", sigma = 0.5 }}
fee = 5.0
race = {race}
"""


# The mechanisms' cases: examples/venue-partial.toml (a crash in which every mechanism acts)
# with its [market.liquidation] section replaced by each of these.
MECHANISMS = {
    "whole": 'mechanism = "whole"',
    "partial": 'mechanism = "partial"',
    "partial, fund + adl": 'mechanism = "partial"\nkeeper_share = "80%"\ninsurance_fund = 1000.0\non_empty = "adl"',
    "close_factor": 'mechanism = "close_factor"',
    "close_factor, socialise": 'mechanism = "close_factor"\non_empty = "socialise"',
    "dutch_auction": 'mechanism = "dutch_auction"\nstep = "100ms"\nbuffer = 1.1',
    "whole, fund + adl": 'mechanism = "whole"\nkeeper_share = "80%"\ninsurance_fund = 1000.0\non_empty = "adl"',
    # Maker's flip sells a long's collateral (a vault): its case and the whole run it is paired
    # with hold longs only, and its bids stand 1 s in auctions of at most 3 s, so every lot
    # closes within the run.
    "english_auction": 'mechanism = "english_auction"\nttl = "1s"\ntau = "3s"',
}
LONGS_ONLY = {"english_auction"}
# Keepers racing for each account against the bare network: what a market may cost (CPU or wall).
RACING_TARGET = 2.5

# --smoke: flash-crash cut to 3 s of traffic (its later phases and partition left out), the
# market's crash moved into it.
SMOKE = ['run.duration="3s"', 'run.drain="1s"']
SMOKE_CRASH = 'market.instruments.0.shocks=[{at="1s", fall="25%", over="1s"}]'


def _venue_scenario(liquidation: str, longs_only: bool = False) -> Scenario:
    text = (ROOT / "examples" / "venue-partial.toml").read_text()
    if longs_only:
        assert 'long_share = "70%"' in text
        text = text.replace('long_share = "70%"', 'long_share = "100%"')
    head, rest = text.split("[market.liquidation]\n", 1)
    rest = rest[rest.index("\n\n"):]  # the example's own section ends at the first blank line
    return parse_scenario(f"{head}[market.liquidation]\n{liquidation}\n{rest}", source="venue-partial.toml",
                          base_dir=ROOT / "examples")


def _scenario(with_market: bool, accounts: int, keepers: int, race: bool = True, smoke: bool = False) -> Scenario:
    text = (ROOT / "examples" / "flash-crash.toml").read_text()
    if with_market:
        text += MARKET.format(accounts=accounts, keepers=keepers, race=str(race).lower())
    overrides = [*SMOKE, *([SMOKE_CRASH] if with_market else [])] if smoke else []
    return parse_scenario(text, source="flash-crash.toml", base_dir=ROOT / "examples", overrides=overrides)


# What a run is timed by: wall time (``time.perf_counter``), or with ``--clock cpu`` the
# process's CPU time (``time.process_time``, all its threads), which moves less than wall
# time on a machine whose cores other work shares.
CLOCK = time.perf_counter


def _timed(scenario: Scenario) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as directory:
        started = CLOCK()
        result = msgstorm.run(scenario, Path(directory) / "run")
        return CLOCK() - started, result.summary


# Where a run's CPU time goes (each case's ``parts`` line): each part of the simulator is the
# classes of these modules (``timing.CpuSplit`` charges a method's time to its part). The
# market's history rows (``HistoryRows``, a mixin of the reactor) count as history.
PARTS = {
    "network": ("sim.gossip", "sim.links", "sim.link_model", "sim.link_samples", "sim.topology", "sim.forwarding",
                "sim.hop_stages"),
    "sequencer": ("sim.sequencer", "sim.intake_log", "sim.block_packing", "sim.block_contents", "sim.lane",
                  "sim.backpressure", "sim.policies", "sim.policies_batch", "sim.policies_fair",
                  "sim.policies_commit_reveal", "sim.fee_wait", "sim.chain", "sim.control", "sim.producers"),
    "market": tuple(f"market.{path.stem}" for path in sorted((ROOT / "src" / "msgstorm" / "market").glob("*.py"))
                    if path.stem not in ("__init__", "reactor_rows")),
    "history": ("sim.recorder", "history.writer", "market.reactor_rows"),
}
SPLIT_COLUMNS = ("network", "sequencer", "market", "history", "other", "other threads")
# The 2020 replay's split: Maker's flip auctions (their rules, books and the reactor's auction
# steps) apart from the rest of the market.
AUCTIONS = ("market.auction", "market.auction_book", "market.dutch", "market.flip", "market.reactor_auctions")
PARTS_2020 = {"network": PARTS["network"], "sequencer": PARTS["sequencer"],
              "market": tuple(module for module in PARTS["market"] if module not in AUCTIONS),
              "auctions": AUCTIONS, "history": PARTS["history"]}
SPLIT_COLUMNS_2020 = ("network", "sequencer", "market", "auctions", "history", "other", "other threads")


def _classes(modules: tuple[str, ...]) -> list[type]:
    """The classes defined in ``modules`` whose methods run (not protocols or tuples)."""
    found = []
    for name in modules:
        module = importlib.import_module(f"msgstorm.{name}")
        for value in vars(module).values():
            if (inspect.isclass(value) and value.__module__ == module.__name__ and not issubclass(value, tuple)
                    and Protocol not in value.__mro__[1:] and not getattr(value, "_is_protocol", False)):
                found.append(value)
    return found


def _split(scenario: Scenario, parts: dict[str, tuple[str, ...]] = PARTS) -> dict[str, float]:
    """One more run of ``scenario``, its CPU seconds split by part of the simulator (``PARTS``;
    ``other``: the event loop, traffic, the analysis and report; ``other threads``: the
    history writer's). The wrappers cost a Python call per method call, so the parts add up
    to more than a plain run's time: a split, not a timing."""
    split = CpuSplit()
    for part, modules in parts.items():
        split.patch(part, _classes(modules))
    try:
        return split.measure(lambda: _timed(scenario))
    finally:
        split.unpatch()


def _split_line(label: str, seconds: dict[str, float], columns: tuple[str, ...] = SPLIT_COLUMNS) -> str:
    total = sum(seconds.values())
    cells = "  ".join(f"{part} {seconds.get(part, 0.0):5.2f}" for part in columns)
    return f"  {label:<24} CPU {total:5.2f} s: {cells}"


def _tick(accounts: int) -> None:
    """One price tick's cost against how many accounts it crosses."""
    scenario = _scenario(True, accounts, 1)
    assert scenario.market is not None
    started = time.perf_counter()
    drawn = draw_accounts(scenario.market, [2000.0], np.random.SeedSequence(1))
    index = LineIndex(drawn, 1)
    setup = time.perf_counter() - started
    print(f"{accounts:,} accounts drawn and indexed in {setup:.2f} s")
    for fall in (0.99, 0.9, 0.75):
        cursor = index.cursor()
        started = time.perf_counter()
        crossed = cursor.past(0, 2000.0 * fall)
        print(f"  a tick to {fall:.0%} of the entry crosses {len(crossed):,} accounts in "
              f"{(time.perf_counter() - started) * 1e3:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--keepers", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", choices=["both", "market"], default="both")
    parser.add_argument("--mechanisms", choices=["all", "none", "only"], default="all",
                        help="also (only) time each liquidation mechanism against whole on examples/venue-partial.toml")
    parser.add_argument("--split", action="store_true",
                        help="keepers split the accounts (race = false) instead of racing for each")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time runs by wall time or by the process's CPU time (steadier on a shared machine)")
    parser.add_argument("--smoke", action="store_true",
                        help="200 accounts, 2 keepers, flash-crash cut to 3 s, one pair of each mechanism: that the "
                             "script runs, not a measure")
    parser.add_argument("--no-parts", dest="parts", action="store_false",
                        help="leave out each case's CPU split by part (network, sequencer, market, history)")
    parser.add_argument("--black-thursday", action="store_true",
                        help="also examples/black-thursday.toml: its time and its CPU split by part")
    parser.add_argument("--replay-2020", action="store_true",
                        help="also examples/black-thursday-2020.toml: its CPU time and its CPU split by part")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.smoke:
        args.accounts, args.keepers = 200, 2
    if args.black_thursday:
        _black_thursday(args.repeat, args.parts, args.smoke)
    if args.replay_2020:
        _replay_2020(args.repeat, args.parts, args.smoke)
    if args.mechanisms == "only":
        _mechanisms(args.repeat, args.smoke, args.parts)
        return 0
    plain = _scenario(False, args.accounts, args.keepers, smoke=args.smoke)
    market = _scenario(True, args.accounts, args.keepers, race=not args.split, smoke=args.smoke)
    _timed(plain)
    _timed(market)
    plain_s: list[float] = []
    market_s: list[float] = []
    summary: dict[str, object] = {}
    for _ in range(args.repeat):
        if args.only == "both":
            plain_s.append(_timed(plain)[0])
        seconds, summary = _timed(market)
        market_s.append(seconds)
    print(f"flash-crash, {args.accounts:,} accounts, {args.keepers} keepers "
          f"({'splitting the accounts' if args.split else 'racing for each account'}), an oracle")
    print(f"  with the market:    {statistics.median(market_s):.2f} s  (runs: {' '.join(f'{s:.2f}' for s in market_s)})")
    if plain_s:
        ratio = statistics.median(market_s) / statistics.median(plain_s)
        print(f"  without the market: {statistics.median(plain_s):.2f} s  (runs: {' '.join(f'{s:.2f}' for s in plain_s)})")
        print(f"  ratio {ratio:.2f}x (target: at most {RACING_TARGET}x) {'met' if ratio <= RACING_TARGET else 'NOT MET'}")
    market_summary = summary.get("market") or {}
    print(f"  liquidations: {market_summary.get('liquidations')}")  # type: ignore[union-attr]
    if args.parts:
        _parts_header()
        print(_split_line("with the market", _split(market)))
        if args.only == "both":
            print(_split_line("without the market", _split(plain)))
    if plain_s:
        kernel_s = _kernel_seconds(market)
        print(f"  the market's gossip kernel alone: {kernel_s:.2f} s, {kernel_s / statistics.median(plain_s):.2f}x "
              f"the whole run without the market ({_sent(summary):,} messages sent against "
              f"{_sent(_timed(plain)[1]):,})")
    if args.mechanisms == "all":
        _mechanisms(args.repeat, args.smoke, args.parts)
    if args.accounts >= 100_000:
        _tick(args.accounts)
    return 0


def _parts_header() -> None:
    print("  CPU by part, one more run each with timers on the parts' methods (which add a Python call each: "
          "a split, not a timing; other: loop, traffic, analysis, report; other threads: the history writer's)")


def _black_thursday(repeat: int, parts: bool, smoke: bool = False) -> None:
    """examples/black-thursday.toml (the keepers' gas war on a congested EIP-1559 chain),
    ``repeat`` runs after a warm-up, and its CPU split by part; then ``msgstorm run`` of it
    as a whole process against the target, and the floor under it (``_floor``). ``smoke``:
    the scenario cut to ``FIXED_RUN`` throughout."""
    cut = FIXED_RUN if smoke else []
    scenario = msgstorm.load_scenario(ROOT / "examples" / "black-thursday.toml", cut)
    _timed(scenario)
    seconds = [_timed(scenario)[0] for _ in range(repeat)]
    clock = "CPU time" if CLOCK is time.process_time else "wall time"
    print(f"examples/black-thursday.toml{' cut to 1 s (a smoke run)' if smoke else ''}, by {clock}: "
          f"{statistics.median(seconds):.2f} s "
          f"(runs: {' '.join(f'{s:.2f}' for s in seconds)})")
    if parts:
        _parts_header()
        print(_split_line("black-thursday", _split(scenario)))
    _floor(scenario, cut, 1 if smoke else max(repeat, 3))


# The 2020 replay, a run: its CPU at most this (issue 66's target). --smoke: the day's first
# 20 minutes and a minute of drain.
REPLAY_2020_TARGET_S = 5.0
REPLAY_2020_SMOKE = ['run.duration="20min"', 'run.drain="1min"']


def _replay_2020(repeat: int, parts: bool, smoke: bool = False) -> None:
    """examples/black-thursday-2020.toml by the process's CPU time (whatever ``--clock``
    says: a long run on a shared machine), ``repeat`` runs after a warm-up (none with
    ``smoke``), against ``REPLAY_2020_TARGET_S``; and its CPU split by part, the auctions
    apart (``PARTS_2020``)."""
    global CLOCK
    clock, CLOCK = CLOCK, time.process_time
    try:
        scenario = msgstorm.load_scenario(ROOT / "examples" / "black-thursday-2020.toml",
                                          REPLAY_2020_SMOKE if smoke else [])
        if not smoke:
            _timed(scenario)
        seconds = [_timed(scenario)[0] for _ in range(repeat)]
    finally:
        CLOCK = clock
    run_s = statistics.median(seconds)
    met = "met" if run_s <= REPLAY_2020_TARGET_S else "NOT MET"
    print(f"examples/black-thursday-2020.toml{' cut to 20 min (a smoke run)' if smoke else ''}, by CPU time: "
          f"{run_s:.2f} s (runs: {' '.join(f'{s:.2f}' for s in seconds)}; target at most "
          f"{REPLAY_2020_TARGET_S} s) {met}")
    if parts:
        _parts_header()
        print(_split_line("black-thursday-2020", _split(scenario, PARTS_2020), SPLIT_COLUMNS_2020))


# ``msgstorm run examples/black-thursday.toml``, a whole process: its CPU at most this.
WHOLE_RUN_TARGET_S = 2.5
# The fixed part of a run: the same scenario cut to this much traffic and drain.
FIXED_RUN = ['run.duration="1s"', 'run.drain="1s"']


def _process_cpu(overrides: list[str]) -> tuple[float, float]:
    """``msgstorm run examples/black-thursday.toml -q`` with ``overrides`` in a process of its
    own (into a temporary directory; the scenario exits 1 on purpose: its SLO): its user and
    system CPU seconds, from ``getrusage`` of the children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as directory:
        sets = [argument for override in overrides for argument in ("--set", override)]
        subprocess.run([sys.executable, "-m", "msgstorm", "run", str(ROOT / "examples" / "black-thursday.toml"),
                        "-q", "--out", str(Path(directory) / "run"), *sets],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def _kernel_seconds(scenario: Scenario) -> float:
    """The gossip kernel's CPU in one run of ``scenario`` (a timer on ``GossipState``'s
    methods only: the compiled kernel and its Python wrapper)."""
    split = CpuSplit()
    split.patch("kernel", [GossipState])
    try:
        return split.measure(lambda: _timed(scenario))["kernel"]
    finally:
        split.unpatch()


def _floor(scenario: Scenario, cut: list[str], pairs: int) -> None:
    """Black Thursday (``cut`` to it) as ``msgstorm run``, ``pairs`` processes alternating
    with the fixed part, against ``WHOLE_RUN_TARGET_S``; and the floor under it: the fixed
    part (the scenario cut to ``FIXED_RUN``: start-up, imports, the compiled code's cache,
    the analysis and report of a short history) and the gossip kernel's own CPU in a run."""
    whole: list[float] = []
    fixed: list[float] = []
    for _ in range(pairs):
        whole.append(sum(_process_cpu(cut)))
        fixed.append(sum(_process_cpu(FIXED_RUN)))
    run_s, fixed_s = statistics.median(whole), statistics.median(fixed)
    kernel_s = _kernel_seconds(scenario)
    met = "met" if run_s <= WHOLE_RUN_TARGET_S else "NOT MET"
    print(f"  msgstorm run, a whole process (user + system CPU): {run_s:.2f} s "
          f"(runs: {' '.join(f'{s:.2f}' for s in whole)}; target at most {WHOLE_RUN_TARGET_S} s) {met}")
    print(f"  its floor: the fixed part {fixed_s:.2f} s (cut to 1 s; runs: {' '.join(f'{s:.2f}' for s in fixed)}) "
          f"+ the gossip kernel {kernel_s:.2f} s = {fixed_s + kernel_s:.2f} s, leaving "
          f"{WHOLE_RUN_TARGET_S - fixed_s - kernel_s:.2f} s of the target for the rest "
          f"(now {run_s - fixed_s - kernel_s:.2f} s)")


def _mechanisms(repeat: int, smoke: bool = False, parts: bool = True) -> None:
    """Each mechanism's run of examples/venue-partial.toml against whole's, paired: whole and
    the mechanism alternate ``max(repeat, 3)`` times, so a machine whose load drifts (other
    work on its cores) weighs on both alike; the ratio is of the medians. ``smoke``: ``repeat``
    times, without the untimed warm-up runs."""
    wholes = {False: _venue_scenario(MECHANISMS["whole"]), True: _venue_scenario(MECHANISMS["whole"], True)}
    for whole in wholes.values() if not smoke else ():
        _timed(whole)
    clock = "CPU time" if CLOCK is time.process_time else "wall time"
    if parts:
        _parts_header()
    print("liquidation mechanisms on examples/venue-partial.toml (ETH -30% over 4 s, 2,000 accounts), "
          f"paired with whole, by {clock}")
    for name, section in MECHANISMS.items():
        if name == "whole":
            continue
        scenario = _venue_scenario(section, name in LONGS_ONLY)
        whole = wholes[name in LONGS_ONLY]
        if not smoke:
            _timed(scenario)
        whole_s, own_s = [], []
        summary: dict[str, object] = {}
        whole_summary: dict[str, object] = {}
        for _ in range(repeat if smoke else max(repeat, 3)):
            seconds, whole_summary = _timed(whole)
            whole_s.append(seconds)
            seconds, summary = _timed(scenario)
            own_s.append(seconds)
        ratio = statistics.median(own_s) / statistics.median(whole_s)
        market = summary.get("market") or {}
        venue = market.get("venue") or {}  # type: ignore[union-attr]
        print(f"  {name:<24} {statistics.median(own_s):6.2f} s vs whole {statistics.median(whole_s):5.2f} s  "
              f"ratio {ratio:.2f}x {'met' if ratio <= 1.5 else 'NOT MET'}  "
              f"keeper messages {_messages(summary)} vs whole {_messages(whole_summary)}, "
              f"executed {market.get('liquidations', {}).get('executed')}, "  # type: ignore[union-attr]
              f"partial calls {venue.get('partial_calls')}, fund used {venue.get('insurance_fund', {}).get('used')}, "
              f"deleveraged {venue.get('deleveraged')}, socialised {venue.get('socialised')}, "
              f"bad debt {market.get('bad_debt', {}).get('absolute')}"  # type: ignore[union-attr]
              f"{', longs only' if name in LONGS_ONLY else ''}")
        if parts:
            print(_split_line(name, _split(scenario)))
    if parts:
        for longs_only, whole in wholes.items():
            print(_split_line("whole" + (", longs only" if longs_only else ""), _split(whole)))



def _sent(summary: dict[str, object]) -> int:
    """Every message a run sent (its summary's ``messages.sent``)."""
    messages = summary.get("messages")
    return int(messages["sent"]) if isinstance(messages, dict) else 0


def _messages(summary: dict[str, object]) -> object:
    """The keepers' messages a run sent (liquidations, takes, bids): what a mechanism's
    time follows."""
    market = summary.get("market") or {}
    return market.get("liquidations", {}).get("messages")  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
