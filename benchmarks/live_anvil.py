"""msgstorm's chain target against a plain web3.py loop on one anvil node, in one run.

Run by hand, not in CI (needs anvil: ``npm install @foundry-rs/anvil-linux-amd64@1.7.1``, and
``pip install web3``):

    python benchmarks/live_anvil.py            # a few minutes
    python benchmarks/live_anvil.py --quick    # shorter runs

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
    transaction the node accepted is committed (none pending, lost or refused); each rate is
    tried ``--tries`` times (another process taking the shared cores for a few ms fails a run).
    The search doubles the rate until a rate fails, then bisects. Each run's CPU seconds of
    msgstorm's process and of the node say which one is the limit.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from msgstorm.live.chain.anvil import AnvilNode, find_anvil  # noqa: E402
from msgstorm.live.servers import ManagedServer, free_port  # noqa: E402
from msgstorm.runner import run  # noqa: E402
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


def _msgstorm(url: str, rate: int, duration: str, out: Path, max_lag_ms: float) -> tuple[bool, dict[str, Any]]:
    scenario = parse_scenario(SCENARIO.format(duration=duration, url=url, rate=rate), source="bench.toml")
    result = run(scenario, out / f"r{rate}-{time.monotonic_ns()}", write_report=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    messages = summary["messages"]
    generator = summary["generator"]
    ok = (generator["send_lag_ms"]["p99"] <= max_lag_ms and messages["pending"] == 0 and messages["lost"] == 0
          and messages["rejected"] == 0 and messages["unsent"] == 0)
    facts = {"rate": rate, "ok": ok, "send_lag_p99_ms": generator["send_lag_ms"]["p99"],
             "committed": messages["committed"], "pending": messages["pending"], "lost": messages["lost"],
             "rejected": messages["rejected"], "unsent": messages["unsent"],
             "cpu_s": _cpu_seconds(result.run_dir)}
    shutil.rmtree(result.run_dir, ignore_errors=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--max-lag-ms", type=float, default=1.0,
                        help="the p99 send lag a sustained rate keeps (1 ms; a loaded machine may need more)")
    parser.add_argument("--seconds", type=float, default=5.0, help="the web3.py loop's and the signer's run")
    args = parser.parse_args()
    duration = "3s" if args.quick else "6s"
    work = Path(tempfile.mkdtemp(prefix="msgstorm-bench-anvil-"))
    port = free_port()
    template = parse_scenario(SCENARIO.format(duration="1s", url="http://127.0.0.1:1", rate=1), source="bench.toml",
                              overrides=["live.anvil.accounts=1001"])
    argv = AnvilNode(template, work).argv(find_anvil(), port) + ["--silent"]
    node = ManagedServer("anvil", argv, port, work / "node", 30)
    node.start()
    url = f"http://127.0.0.1:{port}"
    try:
        sign = _sign_rate(args.seconds)
        print(f"sign: eth-account signs {sign:,.0f} transactions/s on one core", flush=True)
        web3, nonce = _web3_rate(url, args.seconds)
        print(f"web3: send_transaction loop {web3:,.0f} transactions/s", flush=True)
        best, failed, rate = 0, None, 250
        while failed is None or failed - best > max(50, best // 10):
            results = []
            for _ in range(args.tries):
                ok, facts = _msgstorm(url, rate, duration, work, args.max_lag_ms)
                print(f"msgstorm: {json.dumps(facts)}", flush=True)
                results.append(ok)
                if ok:
                    break
            if any(results):
                best = rate
                rate = rate * 2 if failed is None else (rate + failed) // 2
            else:
                failed = rate
                rate = (best + failed) // 2
            if rate == best or rate == failed:
                break
        web3_after, _ = _web3_rate(url, args.seconds, nonce)
        print(f"web3 (again, interleaved): {web3_after:,.0f} transactions/s", flush=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"msgstorm sustained {best:,}/s (first failing {failed}/s); web3.py loop {web3:,.0f} / "
              f"{web3_after:,.0f}/s: {best / max(web3, web3_after):.1f}x; this process's peak RSS {peak_mb:,.0f} MB")
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
