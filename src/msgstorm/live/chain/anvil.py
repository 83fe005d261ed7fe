"""anvil, Foundry's local EVM node: found, configured from the scenario, started on loopback.

Place in the pipeline: under ``live/chain/target.py``, the class the live target
``anvil`` drives (``TARGETS``, ``targets/live.py``). ``find_anvil`` looks for the binary in
``$MSGSTORM_ANVIL``, on PATH, then in a ``node_modules`` of the project or the working
directory (where ``npm install @foundry-rs/anvil-linux-amd64`` puts it), and says how to
install it when it is nowhere.
``AnvilNode.argv`` turns the scenario's chain settings into anvil's flags (the mapping is in
``AnvilSpec``'s docstring); ``AnvilNode.problems`` refuses, naming the field, what anvil
cannot do. With ``live.url`` no node is started: any EVM JSON-RPC node with unlocked
accounts (``eth_accounts``, ``eth_sendTransaction``) is the target.

The node msgstorm starts is a server of the nemesis's (``Servers``): ``pause``, ``crash``
and ``restart`` faults act on it as on a broker. When the scenario stops it (a crash or a
restart), it keeps its chain in ``servers/anvil-state.json`` (anvil's ``--state``: loaded at
start, written on a graceful exit and every second -- what a SIGKILL takes is what came after
the last write; anvil writes the file in place, so a crash's SIGKILL lands while it is whole).
Its links go through the fault proxy for a ``toxic`` (``Servers.client_routes``):
``publisher`` is the JSON-RPC link (the sends, and the block reads and pool samples on the
same connections), ``consumers`` the WebSocket of the new heads. A toxic that changes bytes
is refused: it would break the JSON, not a payload.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from msgstorm.faults.schedule import fault_entries
from msgstorm.live.chain.rollup import problems as rollup_problems
from msgstorm.live.drivers.capabilities import Capabilities, Checks, Servers
from msgstorm.live.servers import ManagedServer, ServerError, free_port
from msgstorm.live.toxics import TOXICS
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.schema import CrashFault, Eip1559, RestartFault, Scenario, ToxicFault

if TYPE_CHECKING:  # the front imports the chain's records, which import this module
    from msgstorm.live.chain.forced import SequencerFront

__all__ = ["ANVIL_ENV", "INSTALL", "AnvilNode", "find_anvil"]

ANVIL_ENV = "MSGSTORM_ANVIL"
# Into ./node_modules, and nothing else: no package.json or package-lock.json left behind.
INSTALL = "npm install --no-save --no-package-lock --prefix . @foundry-rs/anvil-linux-amd64@1.7.1"
_PACKAGE = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
_PROJECT = Path(__file__).resolve().parents[4]  # src/msgstorm/live/chain/anvil.py -> the checkout
# sequencer.policy -> anvil's --order.
_ORDERS = {"fifo": "fifo", "fee_priority": "fees"}
NAME = "anvil"
STATE_FILE = "anvil-state.json"  # in the run's servers/ directory, when a fault stops the node
# anvil writes its state every this many seconds (its smallest interval) besides at exit.
_STATE_INTERVAL_S = 1


def find_anvil() -> str:
    """The anvil binary's path, else a ServerError naming how to install it."""
    own = os.environ.get(ANVIL_ENV)
    if own:
        if not Path(own).is_file():
            raise ServerError(f"${ANVIL_ENV}={own}: no such file; install anvil with: {INSTALL}")
        return os.path.abspath(own)
    found = shutil.which("anvil")
    if found:
        return os.path.abspath(found)
    for root in (_PROJECT, Path.cwd()):
        if (root / _PACKAGE).is_file():
            return str(root / _PACKAGE)
    raise ServerError(f"anvil not found (${ANVIL_ENV}, PATH, ./node_modules); install it: {INSTALL}")


class AnvilNode:
    """The node of one run: ``start`` it (none with ``live.url``), ``stop`` it on every way out."""

    capabilities = Capabilities(servers=Servers(client_routes=True), checks=Checks(scenario=True, market=True),
                                sequencer=True)
    # ``--target http://`` or ``ws://``: an EVM node's JSON-RPC (anvil or any node with unlocked
    # accounts), new heads over WebSocket on the same host and port. No ``generator_names``:
    # its messages are transactions, each account's nonces one sender's.
    url_schemes: ClassVar[dict[str, str]] = {"http": "http", "ws": "http"}

    def __init__(self, scenario: Scenario, run_dir: Path) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.server: ManagedServer | None = None
        self.routed: dict[str, str] = {}  # role -> the fault proxy's URL its link goes through
        # With [rollup] and a sequencer outage: the sequencer's intake the fault turns down and up
        # (live/chain/forced.py, set by the chain target).
        self.front: SequencerFront | None = None

    def sequencer_front(self) -> SequencerFront | None:
        """The rollup's sequencer in front of this node (``Capabilities.sequencer``), if the run has one."""
        return self.front

    @staticmethod
    def problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
        """What anvil cannot do that the scenario asks, each with its field."""
        said: list[tuple[tuple[str | int, ...], str]] = []
        if scenario.sequencer.policy not in _ORDERS:
            said.append((("sequencer", "policy"), f"anvil orders its pool by fees or in arrival order: "
                                                  f"{' or '.join(repr(p) for p in _ORDERS)}, not "
                                                  f"{scenario.sequencer.policy!r}"))
        interval = scenario.live.anvil.block_time or scenario.blocks.interval
        if interval % 1_000_000:
            field = ("live", "anvil", "block_time") if scenario.live.anvil.block_time else ("blocks", "interval")
            said.append((field, f"anvil's block time is in whole milliseconds, not {interval} ns"))
        for where, spec in fault_entries(scenario):
            if isinstance(spec, ToxicFault) and TOXICS[spec.toxic].changes_bytes:
                said.append(((*where, "toxic"), f"a {spec.toxic!r} toxic changes bytes on the node's JSON-RPC link, "
                                                "which breaks the JSON, not a transaction: use a toxic that delays, "
                                                "slows or cuts the link"))
        said += rollup_problems(scenario)
        return said

    @staticmethod
    def market_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
        """What of ``[market]`` the chain does not run (``live/chain/market.py`` runs the rest),
        each with its field."""
        market = scenario.market
        if market is None:
            return []
        said: list[tuple[tuple[str | int, ...], str]] = []
        one_sender = "on a chain node the market's agents send from msgstorm's one process and watch the node's blocks"
        if market.oracle.node is not None:
            said.append((("market", "oracle", "node"), f"{one_sender}: drop node"))
        for index, keeper in enumerate(market.keepers):
            for name, value in (("node", keeper.node), ("region", keeper.region)):
                if value is not None:
                    said.append((("market", "keepers", index, name), f"{one_sender}: drop {name}"))
        if market.topups is not None and market.topups.node is not None:
            said.append((("market", "topups", "node"), f"{one_sender}: drop node"))
        for index, _ in enumerate(market.frontrunners):
            said.append((("market", "frontrunners", index), "front-runners watch a node's queue in the simulator "
                                                            "only: drop [[market.frontrunners]] or run with --target sim"))
        if market.orders is not None:
            said.append((("market", "orders"), "the batch auction's book clears in the simulator's sequencer only: "
                                               "drop [market.orders] or run with --target sim"))
        for where, spec in fault_entries(scenario):
            if isinstance(spec, CrashFault) and market.topups is not None:
                said.append(((*where, "kind"), "a 'crash' fault (SIGKILL) may restart the node from a chain up to "
                                               "a second older (anvil writes its state every second), undoing "
                                               "commits; an undone top-up has no row to say so: drop "
                                               "[market.topups], or use a 'restart' (SIGTERM: the node writes its "
                                               "whole chain first) or a pause"))
        return said

    @staticmethod
    def client_routing_problem(spec: LiveSpec) -> str | None:
        return None  # plain HTTP and WebSocket over TCP: the proxy forwards both

    def client_routes(self) -> dict[str, list[str]]:
        return {"publisher": [self.direct_url], "consumers": ["ws" + self.direct_url[4:]]}

    def route_clients(self, routes: dict[str, list[str]]) -> None:
        self.routed = {role: urls[0] for role, urls in routes.items()}

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        """The node msgstorm starts (none with ``live.url``): the name a fault's ``node`` gives."""
        return [] if spec.url is not None else [NAME]

    @property
    def servers(self) -> list[ManagedServer]:
        return [self.server] if self.server is not None else []

    def server_url(self, server: ManagedServer) -> str:
        return f"http://127.0.0.1:{server.port}"

    def keeps_state(self) -> bool:
        """Whether a fault may stop the node: then its chain is kept across a restart."""
        return any(isinstance(spec, CrashFault | RestartFault) for _, spec in fault_entries(self.scenario))

    def state_whole(self) -> bool:
        """Whether the node's state file is whole now (none written yet counts). anvil writes
        it in place, truncated and then written in pieces: a crash waits for a whole one
        (``ManagedServer.kill``), or the node could not start again from it."""
        try:
            json.loads((self.run_dir / "servers" / STATE_FILE).read_bytes())
        except FileNotFoundError:
            return True
        except ValueError:
            return False
        return True

    def argv(self, binary: str, port: int) -> list[str]:
        scenario = self.scenario
        spec = scenario.live.anvil
        interval_ns = spec.block_time or scenario.blocks.interval
        accounts = spec.accounts + (spec.market_accounts if scenario.market is not None else 0)
        argv = [binary, "--host", "127.0.0.1", "--port", str(port), "--accounts", str(accounts),
                "--balance", str(spec.balance_eth), "--block-time", f"{interval_ns / 1e9:g}",
                "--order", _ORDERS.get(scenario.sequencer.policy, "fees"), "--no-request-size-limit"]
        if scenario.blocks.max_gas is not None:
            argv += ["--gas-limit", str(scenario.blocks.max_gas)]
        if isinstance(scenario.backpressure, Eip1559):
            argv += ["--base-fee", str(round(scenario.backpressure.initial_base_fee * spec.fee_unit_wei))]
        if self.keeps_state():
            argv += ["--state", str(self.run_dir / "servers" / STATE_FILE),
                     "--state-interval", str(_STATE_INTERVAL_S)]
        return argv

    def start(self) -> dict[str, Any] | None:
        """Start the node (blocking until it listens); its ``server_start`` event detail.
        None with ``live.url``: the user's node."""
        if self.scenario.live.url is not None:
            return None
        port = free_port()
        self.server = ManagedServer(NAME, self.argv(find_anvil(), port), port, self.run_dir / "servers",
                                    self.scenario.live.start_timeout / 1e9, cpus=None,
                                    whole=self.state_whole if self.keeps_state() else None)
        self.server.start()
        return {"name": NAME, "pid": self.server.pid, "url": self.url}

    @property
    def direct_url(self) -> str:
        """The node's own JSON-RPC URL (not through the fault proxy)."""
        if self.scenario.live.url is not None:
            return self.scenario.live.url
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        """Where the JSON-RPC link goes: the fault proxy under a toxic, else the node."""
        return self.routed.get("publisher", self.direct_url)

    @property
    def ws_url(self) -> str:
        if "consumers" in self.routed:
            return self.routed["consumers"]
        url = self.direct_url
        return "ws" + url[4:] if url.startswith("http") else url

    def alive(self) -> bool:
        """Whether the node msgstorm started still runs (a user's node: assumed so)."""
        return self.server is None or (self.server.process is not None and self.server.process.poll() is None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
