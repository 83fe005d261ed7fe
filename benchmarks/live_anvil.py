"""msgstorm's chain target against a plain web3.py loop on one anvil node, in one run.

Run by hand (needs anvil: ``npm install @foundry-rs/anvil-linux-amd64@1.7.1``, and
``pip install web3``); CI runs ``--smoke``:

    python benchmarks/live_anvil.py            # a few minutes
    python benchmarks/live_anvil.py --quick    # shorter runs
    python benchmarks/live_anvil.py --smoke    # one round, half-second loops, one 1 s run: that it runs

One anvil this script starts on loopback (1 s blocks, a gas limit no load here fills, fee
order, 1,000 dev accounts), used by every side in turn:

``sign``
    eth-account signing EIP-1559 transactions in this process (what pre-signed batches for
    ``eth_sendRawTransaction`` would cost): signatures a second on one core.

``web3``
    The loop a user writes first: ``w3.eth.send_transaction`` from one dev account (the node
    signs), one after the other, for ``--seconds``; closed loop, its rate is sends / seconds.

``msgstorm``
    ``msgstorm run`` of a constant-rate scenario (``target = "anvil"``, ``live.url`` this
    node): open loop, every transaction stamped against its intended time. A rate is
    *sustained* when the p99 send lag is within ``--max-lag-ms`` (1 ms) and every
    transaction the node accepted is committed (none pending, dropped, lost or refused); each
    rate is tried ``--tries`` times (another process taking the shared cores for a few ms fails
    a run). The search doubles the rate until a rate fails, then bisects.

The two sides take turns, ``--rounds`` times (web3, msgstorm's search, web3, ...), so a
machine whose load changes meets both alike; the last lines give each side's spread over the
rounds and the ratio of the medians. Every run says the CPU seconds of both processes over it:
msgstorm's (or this process's, for the web3.py loop) and the node's (read from
``/proc/PID/stat``), and so which one is the limit, and the machine's load average.

``--ladder 500,1000,2000`` also runs each of those rates once a round, whatever the search
found, to see where the node's CPU (or msgstorm's) limits when the send lag is not the bound.
``--before OLD/src`` runs msgstorm's side twice a round, from this checkout and from ``OLD/src``
(another version's source tree), one after the other: a change's before and after on one node
under the same load. Each ``msgstorm run`` is a process of its own, started from its tree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from msgstorm.live.chain.anvil import AnvilNode, find_anvil  # noqa: E402
from msgstorm.live.servers import ManagedServer, free_port  # noqa: E402
from msgstorm.scenario import parse_scenario  # noqa: E402

SCENARIO = """
target = "anvil"
[run]
name = "bench-anvil"
duration = "{duration}"
drain = "5s"
[blocks]
interval = "1s"
max_gas = 2_000_000_000
[sequencer]
policy = "fee_priority"
[live]
url = "{url}"
[live.anvil]
accounts = 1000
[[agents]]
name = "flow"
arrival = {{ process = "constant", rate = "{rate}/s" }}
fee = 5.0
size = "64B"
"""


def _sign_rate(seconds: float) -> float:
    from eth_account import Account

    account = Account.create()
    tx: dict[str, Any] = {"to": "0x000000000000000000000000000000000000dEaD", "value": 0, "gas": 23_000,
                          "maxFeePerGas": 5 * 10**9, "maxPriorityFeePerGas": 5 * 10**9, "chainId": 31337,
                          "data": "0x" + "11" * 64, "type": 2}
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tx["nonce"] = count
        account.sign_transaction(tx)
        count += 1
    return count / (time.perf_counter() - started)


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _web3_rate(url: str, seconds: float, nonce: int | None = None) -> tuple[float, int]:
    """The loop's rate, and the sender's next nonce (anvil's ``pending`` count leaves out
    what waits in its pool, so a second loop starts from the first's end)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    sender = w3.eth.accounts[-1]  # the node has one more than msgstorm sends from
    if nonce is None:
        nonce = w3.eth.get_transaction_count(sender, "pending")
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        w3.eth.send_transaction({"from": sender, "to": "0x000000000000000000000000000000000000dEaD", "value": 0,
                                 "gas": 23_000, "maxFeePerGas": 5 * 10**9, "maxPriorityFeePerGas": 5 * 10**9,
                                 "nonce": nonce + count, "data": "0x" + "11" * 64})
        count += 1
    return count / (time.perf_counter() - started), nonce + count


def _msgstorm(url: str, rate: int, duration: str, out: Path, max_lag_ms: float, src: Path) -> tuple[bool, dict[str, Any]]:
    """``msgstorm run`` (from the source tree ``src``) of the scenario at ``rate``; whether it
    sustained the rate, and its facts."""
    run_dir = out / f"r{rate}-{time.monotonic_ns()}"
    scenario = out / f"s{rate}.toml"
    scenario.write_text(SCENARIO.format(duration=duration, url=url, rate=rate))
    subprocess.run([sys.executable, "-c", "from msgstorm.cli import main; main()", "run", str(scenario), "--out",
                    str(run_dir), "-q"], env={**os.environ, "PYTHONPATH": str(src)}, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((run_dir / "summary.json").read_text())
    messages = summary["messages"]
    generator = summary["generator"]
    ok = (generator["send_lag_ms"]["p99"] <= max_lag_ms and messages["pending"] == 0 and messages["lost"] == 0
          and messages["rejected"] == 0 and messages["unsent"] == 0 and messages["dropped"] == 0)
    facts = {"rate": rate, "ok": ok, "send_lag_p99_ms": generator["send_lag_ms"]["p99"],
             "send_lag_p50_ms": generator["send_lag_ms"]["p50"],
             "committed": messages["committed"], "pending": messages["pending"], "dropped": messages["dropped"],
             "lost": messages["lost"], "rejected": messages["rejected"], "unsent": messages["unsent"],
             "cpu_s": _cpu_seconds(run_dir), "load": round(os.getloadavg()[0], 1)}
    shutil.rmtree(run_dir, ignore_errors=True)
    return ok, facts


def _cpu_seconds(run_dir: Path) -> dict[str, float]:
    """CPU seconds each sampled process used over the run (the last sample less the first)."""
    import pyarrow.dataset as ds

    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for event in ds.dataset(run_dir / "history" / "events").to_table().to_pylist():
        if event["kind"] == "cpu_seconds":
            first.setdefault(event["node"], event["value"])
            last[event["node"]] = event["value"]
    return {name: round(last[name] - first[name], 2) for name in last}


def _side(url: str, rate: int, duration: str, work: Path, args: argparse.Namespace, node_pid: int,
          src: Path, label: str) -> bool:
    """One msgstorm run, its facts printed with the node's CPU seconds over it."""
    node_before = _cpu_s(node_pid)
    ok, facts = _msgstorm(url, rate, duration, work, args.max_lag_ms, src)
    facts["cpu_s"]["anvil"] = round(_cpu_s(node_pid) - node_before, 2)
    print(f"{label}: {json.dumps(facts)}", flush=True)
    return ok


def _search(url: str, duration: str, work: Path, args: argparse.Namespace, node_pid: int, src: Path,
            label: str) -> int:
    """The highest rate msgstorm sustains (doubling from 250/s, then bisecting), each run's
    facts printed with the node's CPU seconds over it."""
    best, failed, rate = 0, None, 250
    while failed is None or failed - best > max(50, best // 10):
        results = []
        for _ in range(args.tries):
            ok = _side(url, rate, duration, work, args, node_pid, src, label)
            results.append(ok)
            if ok:
                break
        if any(results):
            best = rate
            rate = rate * 2 if failed is None else (rate + failed) // 2
        else:
            failed = rate
            rate = (best + failed) // 2
        if rate in (best, failed) or rate <= 0 or args.smoke:  # --smoke: one rate
            break
    return best


def _web3_side(url: str, seconds: float, nonce: int | None, node_pid: int) -> tuple[float, int]:
    node_before, own_before = _cpu_s(node_pid), time.process_time()
    rate, nonce = _web3_rate(url, seconds, nonce)
    print(f"web3: send_transaction loop {rate:,.0f} transactions/s (CPU s: this process "
          f"{time.process_time() - own_before:.2f}, anvil {_cpu_s(node_pid) - node_before:.2f} "
          f"over {seconds:g} s)", flush=True)
    return rate, nonce


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):,.0f}/s (min {min(values):,.0f}, max {max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="one round: 0.5 s of signing and of the web3.py loop, one 1 s msgstorm run at 250/s "
                             "(that the script runs, not a measure)")
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--max-lag-ms", type=float, default=1.0,
                        help="the p99 send lag a sustained rate keeps (1 ms; a loaded machine may need more)")
    parser.add_argument("--seconds", type=float, default=5.0, help="the web3.py loop's and the signer's run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of both sides (the spread is over these)")
    parser.add_argument("--ladder", default="", help="rates (comma-separated) also run once each a round")
    parser.add_argument("--before", type=Path, default=None,
                        help="another version's src/ directory: its msgstorm side runs too, in turn")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.tries = 1, 0.5, 1
    ladder = [int(rate) for rate in args.ladder.split(",") if rate]
    trees = [(ROOT / "src", "msgstorm")] + ([(args.before.resolve(), "before")] if args.before else [])
    duration = "1s" if args.smoke else "3s" if args.quick else "6s"
    work = Path(tempfile.mkdtemp(prefix="msgstorm-bench-anvil-"))
    port = free_port()
    template = parse_scenario(SCENARIO.format(duration="1s", url="http://127.0.0.1:1", rate=1), source="bench.toml",
                              overrides=["live.anvil.accounts=1001"])
    argv = AnvilNode(template, work).argv(find_anvil(), port) + ["--silent"]
    node = ManagedServer("anvil", argv, port, work / "node", 30)
    node.start()
    url = f"http://127.0.0.1:{port}"
    assert node.pid is not None
    try:
        sign = _sign_rate(args.seconds)
        print(f"sign: eth-account signs {sign:,.0f} transactions/s on one core", flush=True)
        web3: list[float] = []
        sustained: dict[str, list[float]] = {label: [] for _, label in trees}
        nonce = None
        for turn in range(args.rounds):
            rate, nonce = _web3_side(url, args.seconds, nonce, node.pid)
            web3.append(rate)
            for src, label in trees:
                sustained[label].append(_search(url, duration, work, args, node.pid, src, label))
                for rung in ladder:
                    _side(url, rung, duration, work, args, node.pid, src, f"{label} ladder")
            print(f"round {turn + 1}: " + ", ".join(f"{label} sustained {found[-1]:,.0f}/s"
                                                    for label, found in sustained.items())
                  + f", web3.py loop {web3[-1]:,.0f}/s", flush=True)
        rate, nonce = _web3_side(url, args.seconds, nonce, node.pid)
        web3.append(rate)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for label, found in sustained.items():
            print(f"{label} sustained {_spread(found)}; web3.py loop {_spread(web3)}: "
                  f"{statistics.median(found) / max(statistics.median(web3), 1e-9):.1f}x (medians)", flush=True)
        print(f"this process's peak RSS {peak_mb:,.0f} MB", flush=True)
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
