"""CometBFT validators on loopback: found, configured from the scenario, started, stopped.

Place in the pipeline: under ``live/chain/comet_target.py``, the class the live
target ``cometbft`` drives (``TARGETS``, ``targets/live.py``). ``find_cometbft`` looks for
the binary in ``$MSGSTORM_COMETBFT``, then in ``$(go env GOPATH)/bin`` (where ``go install``
puts it), then on PATH, and says how to install it when it is nowhere.
``CometNetwork.start`` writes a home per validator (``cometbft testnet``: keys, one genesis
naming every validator) under ``RUN_DIR/servers/``, sets each one's ``config.toml`` from the
scenario (``_settings``: the mapping), and starts ``cometbft node --proxy_app=kvstore`` in
each, every validator a ``ManagedServer`` (a process group of its own, ended with msgstorm).

Every validator's peer-to-peer links go through the fault proxy (``Servers.route_links``): validator
``i`` dials validator ``j`` at a listener of the proxy, ``route-i-j``, that leads to ``j``'s
p2p port, and peer exchange is off, so no validator learns another's own address and dials
past the proxy. A ``partition`` cuts those routes between its groups (``live/nemesis.py``),
a ``toxic`` with ``link = "routes"`` delays, slows or cuts them (all, or those ``between``
two groups: one such toxic a pair of regions makes a latency matrix on one machine), and a
``pause``, ``crash`` or ``restart`` acts on one validator (its home, so its chain and keys,
kept).

A ``double_sign`` fault starts a second signer of one validator (``Servers.validator_keys``):
a node of its own, ``second-signer-<i>``, with a copy of that validator's key and genesis, a
node key and an empty chain of its own (it syncs the blocks from the validators, dialled
directly), and a propose timeout of 1 ms. Once synced, it prevotes nil in each round before
the proposal reaches it while the validator prevotes the block: two votes of one key for one
height and round, which the others commit as ``DuplicateVoteEvidence``. Its last-signed
state is its own, so nothing stops it signing what the validator signed otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from msgstorm.faults.schedule import fault_entries
from msgstorm.live.chain.comet_counters import parse_counters
from msgstorm.live.drivers.capabilities import Capabilities, Checks, Servers
from msgstorm.live.servers import ManagedServer, ServerError, free_port
from msgstorm.processes import die_with_parent
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.schema import Scenario, ToxicFault

__all__ = ["COMETBFT_ENV", "INSTALL", "SECOND_SIGNER", "CometNetwork", "find_cometbft", "validator_names"]

COMETBFT_ENV = "MSGSTORM_COMETBFT"
VERSION = "v0.38.19"
INSTALL = f"go install github.com/cometbft/cometbft/cmd/cometbft@{VERSION}"
NAME = "cometbft"
# Each validator's voting power (all equal: the proposer order and the quorums are those of
# one vote each). Not ``cometbft testnet``'s 1: the kvstore app punishes a double-sign by
# lowering the validator's power by 1 and, at power 0, drops it from the set, after which the
# next evidence against it panics every node ("wanted to punish val ... but can't find it",
# abci/example/kvstore in v0.38.19), halting the chain at the second item of evidence.
_POWER = 100
# The room a block keeps for evidence: one item of duplicate votes (about 300 bytes), not two.
# The kvstore app answers each item with a power update, and two items against one validator
# in one block are two updates of it, which CometBFT refuses ("changing validator set:
# duplicate entry"), halting every node. The default, 1 MiB, is room for thousands.
_EVIDENCE_BYTES = 500
SECOND_SIGNER = "second-signer-{index}"  # the name of validator ``index``'s second signer (a double_sign fault)
# A second signer's propose timeout: it prevotes nil before any proposal can reach it.
_SECOND_SIGNER_PROPOSE = "1ms"
_MAX_BODY_BYTES = 256 * 1024 * 1024  # a batch of live.cometbft.batch transactions of any size a scenario gives


def find_cometbft() -> str:
    """The cometbft binary's path, else a ServerError naming how to install it."""
    own = os.environ.get(COMETBFT_ENV)
    if own:
        if not Path(own).is_file():
            raise ServerError(f"${COMETBFT_ENV}={own}: no such file; install cometbft with: {INSTALL}")
        return os.path.abspath(own)
    for gopath in _gopaths():
        binary = Path(gopath) / "bin" / "cometbft"
        if binary.is_file():
            return str(binary)
    found = shutil.which("cometbft")
    if found:
        return os.path.abspath(found)
    raise ServerError(f"cometbft not found (${COMETBFT_ENV}, $(go env GOPATH)/bin, PATH); install it: {INSTALL}")


def _gopaths() -> list[str]:
    """Go's GOPATH entries: ``$GOPATH``, else ``go env GOPATH``, else Go's default ``~/go``."""
    own = os.environ.get("GOPATH")
    if own:
        return own.split(os.pathsep)
    go = shutil.which("go")
    if go is not None:
        try:
            said = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, timeout=10, check=True)
            if said.stdout.strip():
                return said.stdout.strip().split(os.pathsep)
        except (OSError, subprocess.SubprocessError):
            pass
    return [str(Path.home() / "go")]


def validator_names(count: int) -> list[str]:
    return [f"validator-{i}" for i in range(count)]


def _duration(ns: int) -> str:
    """A Go duration for config.toml: whole milliseconds."""
    return f"{max(1, round(ns / 1e6))}ms"


def _set(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` in ``[section]`` of a config.toml (the key must be there: a typo in
    a key name would otherwise be ignored by the node)."""
    start = text.index(f"\n[{section}]\n") if section else 0
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    body, found = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text[start:end], count=1)
    if not found:
        raise ServerError(f"config.toml has no {key!r} in [{section}]: not the cometbft {VERSION} layout")
    return text[:start] + body + text[end:]


def _quoted(value: str) -> str:
    return '"' + value + '"'


class CometNetwork:
    """The validators of one run: ``start`` them, ``stop`` them on every way out."""

    capabilities = Capabilities(servers=Servers(route_links=True, validator_keys=True), checks=Checks(scenario=True))

    def __init__(self, scenario: Scenario, run_dir: Path) -> None:
        self.scenario = scenario
        self.spec = scenario.live.cometbft
        self.run_dir = run_dir
        self.validators: list[ManagedServer] = []
        self.node_ids: list[str] = []  # each validator's p2p id (its node key's address)
        self.addresses: list[str] = []  # each validator's consensus address (its proposer_address)
        self.proxy_routes = True  # a validator network always routes its p2p links through the proxy
        self.route_links: dict[str, tuple[int, int]] = {}
        self.rpc_ports: list[int] = []
        self.metrics_ports: list[int] = []  # each validator's Prometheus listener (``/metrics``)
        self.p2p_ports: list[int] = []
        self.second_signers: dict[str, ManagedServer] = {}  # validator name -> its second signer, while it runs
        self.second_signers_started: list[ManagedServer] = []  # every one started, for the stop and its events
        self._binary = ""

    @staticmethod
    def problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
        """What the validator network cannot do that the scenario asks, each with its field."""
        said: list[tuple[tuple[str | int, ...], str]] = []
        if scenario.live.url is not None:
            said.append((("live", "url"), "msgstorm starts the validators of target 'cometbft' itself: drop live.url"))
        for where, spec in fault_entries(scenario):
            if isinstance(spec, ToxicFault) and spec.link != "routes":
                said.append(((*where, "link"), f"a toxic on target 'cometbft' acts on the validators' links: "
                                               f'link = "routes" (with between = [[...], [...]] for some of them), '
                                               f"not {spec.link!r}"))
        return said

    @staticmethod
    def has_routes(spec: LiveSpec) -> bool:
        return spec.url is None

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        return [] if spec.url is not None else validator_names(spec.cometbft.validators)

    @staticmethod
    def validator_names(spec: LiveSpec) -> list[str]:
        return validator_names(spec.cometbft.validators)

    @property
    def servers(self) -> list[ManagedServer]:
        return self.validators

    def server_url(self, server: ManagedServer) -> str:
        return f"http://127.0.0.1:{server.port}"

    @property
    def rpc_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.rpc_ports]

    def _settings(self, index: int, p2p_ports: list[int], routes: dict[tuple[int, int], int]) -> list[
            tuple[str, str, str]]:
        """(section, key, value) of validator ``index``'s config.toml."""
        count = len(p2p_ports)
        spec, scenario = self.spec, self.scenario
        peers = ",".join(f"{self.node_ids[j]}@127.0.0.1:{routes[(index, j)]}" for j in range(count) if j != index)
        return [
            ("", "proxy_app", _quoted("kvstore")),
            ("", "moniker", _quoted(f"validator-{index}")),
            ("", "log_level", _quoted("*:error,consensus:info")),
            ("rpc", "laddr", _quoted(f"tcp://127.0.0.1:{self.rpc_ports[index]}")),
            ("rpc", "max_open_connections", "0"),
            # One JSON-RPC batch holds every transaction due at once for the validator.
            ("rpc", "max_request_batch_size", str(spec.batch)),
            ("rpc", "max_body_bytes", str(_MAX_BODY_BYTES)),
            ("p2p", "laddr", _quoted(f"tcp://127.0.0.1:{p2p_ports[index]}")),
            ("p2p", "persistent_peers", _quoted(peers)),
            ("p2p", "pex", "false"),
            ("p2p", "addr_book_strict", "false"),
            ("p2p", "allow_duplicate_ip", "true"),
            ("mempool", "size", str(spec.mempool_size)),
            ("consensus", "timeout_propose", _quoted(_duration(spec.timeout_propose))),
            ("consensus", "timeout_propose_delta", _quoted(_duration(spec.timeout_propose // 2))),
            ("consensus", "timeout_prevote", _quoted(_duration(spec.timeout_vote))),
            ("consensus", "timeout_prevote_delta", _quoted(_duration(spec.timeout_vote // 2))),
            ("consensus", "timeout_precommit", _quoted(_duration(spec.timeout_vote))),
            ("consensus", "timeout_precommit_delta", _quoted(_duration(spec.timeout_vote // 2))),
            ("consensus", "timeout_commit", _quoted(_duration(scenario.blocks.interval))),
            ("tx_index", "indexer", _quoted("null")),
            # Its own counters (ABCI call times, mempool rechecks, bytes per message type), read
            # at the end into the history (``counters``): what the load cost it.
            ("instrumentation", "prometheus", "true"),
            ("instrumentation", "prometheus_listen_addr", _quoted(f"127.0.0.1:{self.metrics_ports[index]}")),
        ]

    def start(self) -> None:
        """Write every validator's home and plan its ports and routes (``spawn`` starts them,
        once the route proxy listens)."""
        binary = self._binary = find_cometbft()
        count = self.spec.validators
        directory = self.run_dir / "servers"
        homes = directory / "cometbft"
        if homes.is_dir():
            shutil.rmtree(homes)  # this run's own chain, left by an earlier run here (--overwrite)
        directory.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([binary, "testnet", "--v", str(count), "--o", str(homes), "--starting-ip-address",
                               "127.0.0.1", "--node-dir-prefix", "validator-"], capture_output=True, text=True,
                              timeout=60, check=False, preexec_fn=die_with_parent)
        if made.returncode != 0:
            raise ServerError(f"cometbft testnet failed ({made.returncode}): {made.stderr.strip()[-500:]}")
        genesis = json.loads((homes / "validator-0" / "config" / "genesis.json").read_text(encoding="utf-8"))
        for validator in genesis["validators"]:
            validator["power"] = str(_POWER)
        genesis["consensus_params"]["evidence"]["max_bytes"] = str(_EVIDENCE_BYTES)
        for i in range(count):  # one genesis, the same bytes in every home
            (homes / f"validator-{i}" / "config" / "genesis.json").write_text(json.dumps(genesis, indent=2),
                                                                              encoding="utf-8")
        self.node_ids = []
        for i in range(count):
            shown = subprocess.run([binary, "show-node-id", "--home", str(homes / f"validator-{i}")],
                                   capture_output=True, text=True, timeout=30, check=True, preexec_fn=die_with_parent)
            self.node_ids.append(shown.stdout.strip().splitlines()[-1])
        self.rpc_ports = [free_port() for _ in range(count)]
        self.metrics_ports = [free_port() for _ in range(count)]
        p2p_ports = self.p2p_ports = [free_port() for _ in range(count)]
        routes = {(i, j): free_port() for i in range(count) for j in range(count) if i != j}
        self.route_links = {f"route-{i}-{j}": (port, p2p_ports[j]) for (i, j), port in routes.items()}
        for i in range(count):
            home = homes / f"validator-{i}"
            config = home / "config" / "config.toml"
            text = config.read_text(encoding="utf-8")
            for section, key, value in self._settings(i, p2p_ports, routes):
                text = _set(text, section, key, value)
            config.write_text(text, encoding="utf-8")
            key = json.loads((home / "config" / "priv_validator_key.json").read_text(encoding="utf-8"))
            self.addresses.append(str(key["address"]).upper())
            self.validators.append(ManagedServer(
                f"validator-{i}", [binary, "node", "--home", str(home)], self.rpc_ports[i], directory,
                self.scenario.live.start_timeout / 1e9))

    def spawn(self) -> list[dict[str, Any]]:
        """Start every validator (after the route proxy listens) and wait for each RPC port."""
        for server in self.validators:
            server.spawn()
        for server in self.validators:
            server.wait_listening()
        return [{"name": s.name, "pid": s.pid, "url": url, "node_id": node_id, "address": address}
                for s, url, node_id, address in zip(self.validators, self.rpc_urls, self.node_ids, self.addresses,
                                                     strict=True)]

    def second_signer(self, name: str) -> ManagedServer:
        """A second node to sign with validator ``name``'s key (the module docstring), its home
        made anew under ``servers/cometbft``; not spawned: the caller spawns it on a thread
        that outlives it (``ManagedServer.spawn``)."""
        index = validator_names(self.spec.validators).index(name)
        if name in self.second_signers:
            raise ServerError(f"{name} has a second signer running already")
        homes = self.run_dir / "servers" / "cometbft"
        own = homes / f"validator-{index}"
        signer = SECOND_SIGNER.format(index=index)
        home = homes / signer
        if home.is_dir():
            shutil.rmtree(home)  # an earlier fault's second signer: this one starts from an empty chain
        (home / "config").mkdir(parents=True)
        (home / "data").mkdir()
        for part in ("genesis.json", "priv_validator_key.json", "config.toml"):
            shutil.copyfile(own / "config" / part, home / "config" / part)
        (home / "data" / "priv_validator_state.json").write_text(
            '{"height": "0", "round": 0, "step": 0}', encoding="utf-8")
        subprocess.run([self._binary, "gen-node-key", "--home", str(home)], capture_output=True, text=True,
                       timeout=30, check=True, preexec_fn=die_with_parent)
        rpc, p2p = free_port(), free_port()
        peers = ",".join(f"{self.node_ids[j]}@127.0.0.1:{port}" for j, port in enumerate(self.p2p_ports))
        config = home / "config" / "config.toml"
        text = config.read_text(encoding="utf-8")
        for section, key, value in (
                ("", "moniker", _quoted(signer)),
                ("rpc", "laddr", _quoted(f"tcp://127.0.0.1:{rpc}")),
                ("p2p", "laddr", _quoted(f"tcp://127.0.0.1:{p2p}")),
                ("p2p", "persistent_peers", _quoted(peers)),
                # No counters: the validator's listener address is in the copied config.
                ("instrumentation", "prometheus", "false"),
                ("consensus", "timeout_propose", _quoted(_SECOND_SIGNER_PROPOSE)),
                ("consensus", "timeout_propose_delta", _quoted(_SECOND_SIGNER_PROPOSE))):
            text = _set(text, section, key, value)
        config.write_text(text, encoding="utf-8")
        server = ManagedServer(signer, [self._binary, "node", "--home", str(home)], rpc, homes.parent,
                               self.scenario.live.start_timeout / 1e9)
        self.second_signers[name] = server
        self.second_signers_started.append(server)
        return server

    def stop_second_signer(self, name: str) -> ManagedServer | None:
        """Kill validator ``name``'s second signer (None: none runs)."""
        server = self.second_signers.pop(name, None)
        if server is not None:
            server.kill()
        return server

    @property
    def every_server(self) -> list[ManagedServer]:
        """The validators and every second signer started."""
        return [*self.validators, *self.second_signers_started]

    def alive(self) -> list[bool]:
        return [s.process is not None and s.process.poll() is None for s in self.validators]

    def counters(self) -> dict[str, dict[str, float]]:
        """Each running validator's own counters (``live/chain/comet_counters.py``), read from
        its Prometheus listener; one that does not answer is left out."""
        read: dict[str, dict[str, float]] = {}
        for server, port in zip(self.validators, self.metrics_ports, strict=False):
            if server.process is None or server.process.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    read[server.name] = parse_counters(answer.read().decode("utf-8", "replace"))
            except OSError:
                continue
        return read

    def stop(self) -> None:
        for server in self.every_server:
            server.stop()
