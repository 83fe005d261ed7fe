"""msgstorm's validator target against a plain client loop on four CometBFT validators, in one run.

Run by hand (needs cometbft: ``go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.19``;
msgstorm finds it in ``$MSGSTORM_COMETBFT``, ``$(go env GOPATH)/bin`` or on PATH); CI runs ``--smoke``:

    python benchmarks/validators.py            # a few minutes
    python benchmarks/validators.py --quick    # shorter runs, a coarser search
    python benchmarks/validators.py --smoke    # a 1 s plain loop and one 1 s run: that it runs

Both sides drive the same kind of network: four validators on loopback, each with its own
home, ports and the built-in ``kvstore`` app, their peer-to-peer links through msgstorm's
route proxy, started as msgstorm starts them (``CometNetwork`` and the ``Nemesis``'s
``prepare``, ``live/chain/cometbft.py`` and ``live/nemesis.py``), a new network for every
run (a chain's mempool and heights carry nothing from one run to the next). Transactions are
unique ``key=value`` bytes of 100 bytes.

``plain``
    The loop a benchmark user writes first: one transaction per ``broadcast_tx_async`` HTTP
    request with aiohttp, the next one sent when the node has answered, round robin over the
    four validators, for ``--plain-seconds``. Closed loop: it measures how fast a client
    gets answers, not whether anything left on time. Its rate is the transactions the
    validators accepted / the seconds it ran. It runs before msgstorm's search, at the
    search's first failure (halfway) and after it (interleaved: the machine's other load
    falls on both), and the ratio is taken against the fastest of its runs.

``msgstorm``
    ``msgstorm run`` of a constant-rate scenario (``target = "cometbft"``, four validators,
    ``key`` modulo four picks the validator, as ``examples/live-cometbft.toml``): open loop,
    every transaction stamped against its intended time. With ``--peak-rate`` one more run at
    that rate says what msgstorm commits a second past its schedule, nothing lost. A rate is *kept* when a run at it
    reports the generator not saturated (p99 send lag <= 1 ms) and nothing a validator
    accepted was lost (none lost, none left pending in a mempool at the end); a rate whose run
    fails is run again (``--tries``), and every run is printed. The search doubles the rate
    until a rate fails, then bisects. Analysis and report are not timed.

The machine's load average is printed with every run: the 2-core machine of
``docs/performance.md`` is shared, and a run whose process waits for a core misses its
send times whatever msgstorm does.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from msgstorm.live.chain.comet_target import encode_tx
from msgstorm.live.chain.cometbft import CometNetwork
from msgstorm.live.nemesis import Nemesis
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.schema import Scenario

SCENARIO = """
target = "cometbft"

[run]
name = "validators-bench"
duration = "{duration}s"
drain = "5s"
window = "1s"

[blocks]
interval = "500ms"

[live.cometbft]
validators = 4

[[agents]]
name = "load"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "100B"
keys = 1000
"""


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def scenario_at(rate: int, duration: float) -> Scenario:
    return parse_scenario(SCENARIO.format(rate=rate, duration=duration), source="validators-bench.toml")


async def _ready(session: aiohttp.ClientSession, urls: list[str], timeout_s: float = 60.0) -> None:
    """Until every validator has committed two heights (as ``CometTarget._ready``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        heights = []
        for url in urls:
            try:
                async with session.get(f"{url}/status") as response:
                    status = await response.json()
                heights.append(int(status["result"]["sync_info"]["latest_block_height"]))
            except (aiohttp.ClientError, KeyError, ValueError):
                heights.append(0)
        if min(heights) >= 2:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the validators made no chain within {timeout_s:g} s")


async def _plain_loop(urls: list[str], seconds: float) -> tuple[int, int]:
    """(accepted, sent) of one transaction per broadcast_tx_async request, for ``seconds``."""
    accepted = sent = 0
    async with aiohttp.ClientSession() as session:
        await _ready(session, urls)
        end = time.monotonic() + seconds
        for k in itertools.count():
            if time.monotonic() >= end:
                break
            tx = encode_tx(k, 0, 0, time.monotonic_ns(), 100).hex()
            async with session.get(f"{urls[k % len(urls)]}/broadcast_tx_async", params={"tx": f"0x{tx}"}) as response:
                answer: dict[str, Any] = await response.json()
            sent += 1
            if "error" not in answer and int(answer["result"].get("code", 0)) == 0:
                accepted += 1
    return accepted, sent


def plain(seconds: float) -> float:
    """Accepted transactions a second of the plain loop, on a network of its own."""
    scenario = scenario_at(1, seconds)
    with tempfile.TemporaryDirectory(prefix="msgstorm-validators-") as directory:
        network = CometNetwork(scenario, Path(directory))

        async def main() -> tuple[int, int]:
            nemesis = Nemesis(scenario, network, Path(directory), lambda *_: None)
            try:
                await nemesis.prepare()  # the route proxy, before the validators dial through it
                network.spawn()
                return await _plain_loop(network.rpc_urls, seconds)
            finally:
                await nemesis.close(time.monotonic_ns)

        network.start()
        try:
            accepted, sent = asyncio.run(main())
        finally:
            network.stop()
    rate = accepted / seconds
    print(f"plain aiohttp loop: {sent:,} sent, {accepted:,} accepted in {seconds:g} s: {rate:,.0f}/s ({load()})",
          flush=True)
    return rate


def msgstorm_at(rate: int, duration: float) -> tuple[bool, dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="msgstorm-validators-") as directory:
        summary = run(scenario_at(rate, duration), Path(directory) / "run", write_report=False).summary
    generator = summary["generator"]
    messages = summary["messages"]
    assert isinstance(generator, dict) and isinstance(messages, dict)
    ok = (not generator["saturated"] and messages["lost"] == 0 and messages["pending"] == 0
          and messages["sent"] > 0)
    return ok, {"lag_p99_ms": generator["send_lag_ms"]["p99"], "sent": messages["sent"],
                "committed": messages["committed"], "rejected": messages["rejected"], "lost": messages["lost"],
                "pending": messages["pending"], "unsent": messages["unsent"],
                "throughput_per_s": round(float(summary["throughput_per_s"]))}  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="one 1 s plain loop and one 1 s msgstorm run at the start rate: that the script runs")
    parser.add_argument("--start-rate", type=int, default=50,
                        help="the search's first rate (it doubles from there until a rate fails, then bisects)")
    parser.add_argument("--tries", type=int, default=2, help="runs at a rate before it counts as not kept")
    parser.add_argument("--plain-seconds", type=float, default=10.0)
    parser.add_argument("--peak-rate", type=int, default=0,
                        help="one more run at this rate before the last plain run: what msgstorm commits past "
                             "its schedule, nothing lost")
    args = parser.parse_args()
    if args.smoke:
        args.plain_seconds, args.tries = 1.0, 1
    duration = 1.0 if args.smoke else 5.0 if args.quick else 10.0
    bisections = 2 if args.quick else 4
    plains = [plain(args.plain_seconds)]
    low, high, rate = 0, None, args.start_rate
    while True:
        ok = False
        for _ in range(args.tries):
            ok, facts = msgstorm_at(rate, duration)
            print(f"msgstorm {rate:>7,}/s for {duration:g} s: {'kept' if ok else 'NOT kept'} {facts} ({load()})",
                  flush=True)
            if ok:
                break
        if ok:
            low = rate
        else:
            if high is None:
                plains.append(plain(args.plain_seconds))  # halfway: the search's first failure
            high = rate
            bisections -= 1
        if bisections < 0 or (high is not None and high - low <= max(low // 20, 1)) or args.smoke:
            break  # --smoke: one rate
        rate = rate * 2 if high is None else (low + high) // 2
    if args.peak_rate:
        _, facts = msgstorm_at(args.peak_rate, duration)
        print(f"msgstorm at {args.peak_rate:,}/s offered: {facts} ({load()})", flush=True)
    if not args.smoke:  # --smoke: the plain loop before the search only
        plains.append(plain(args.plain_seconds))
    fastest = max(plains)
    print(f"plain loop: fastest of {len(plains)} runs {fastest:,.0f}/s")
    print(f"msgstorm highest kept rate: {low:,}/s (p99 send lag <= 1 ms, nothing accepted lost)")
    print(f"ratio msgstorm / plain loop: {low / fastest:.2f}x (target 3x)")


if __name__ == "__main__":
    main()
