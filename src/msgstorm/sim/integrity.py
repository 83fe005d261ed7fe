"""Authenticated messages in the simulator: the verification cost, tamper and replay.

Place in the pipeline: inside the simulator, beside the market's reactors. Two parts:

- ``verified_processing``: a receiving node's processing time plus the verification of one
  message (``[security]``; ``security/costs.py`` says where the cost comes from). The shadow
  network hands this one distribution to every path that draws processing times (the gossip
  kernel, the lone CPU, the compiled one-node loop), so the cost is written once.
- ``Integrity``: the adversary and the leader's verification, a reactor (``traffic/reactor.py``)
  registered in ``REACTORS``. It watches the leader (and its standbys): a message that
  reaches it while a ``tamper`` fault is active (of its kinds, with its probability) arrives
  altered; one that reaches it while a ``replay`` fault is active is copied, and the copy is
  sent again ``delay`` later from the original's node, signed on this chain or on another.
  The leader verifies each before its sequencer sees it: under a scheme that authenticates,
  an altered message fails its tag, a copy on this chain reuses a nonce the leader has seen
  and a copy from another chain fails its tag (the chain id is signed), so each is rejected;
  under ``none`` each is accepted and goes on like any message. The faults' own kinds
  (``AdversaryWindow``) only mark their windows in the history.
- A censoring producer: a message of a ``censor`` fault's kinds that reaches the leader
  within its window is kept out of the sequencer until the window ends (``delay``; the wait
  is its queue wait) or dropped (``drop``); a row of the ``integrity`` table each
  (``censored``, never ``detected``). Every judged message of an
  adversary is a row of the ``integrity`` table (``analysis/integrity.py`` counts them).

With ``verify = "real"`` every message the leader judges is also signed and verified with
the crypto library (``security/crypto.py``) as it arrives, and its verdict is the library's;
the modelled verdict is checked against it (a disagreement stops the run).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from msgstorm.faults.schedule import FaultOp, concrete_faults
from msgstorm.history.events import EventKind
from msgstorm.sampling import Drawn, shifted
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.scenario.registry import FAULT_KINDS, REACTORS
from msgstorm.scenario.schema import CensorFault, ReplayFault, Scenario, TamperFault
from msgstorm.security.costs import CostSource, resolve_verify_cost
from msgstorm.security.crypto import NonceBook, Scheme, make_scheme, signed_bytes
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.host import SimHost
from msgstorm.sim.state import AGENT, FEE, KEY, KIND, ORIGIN, SIZE

__all__ = ["INTEGRITY_ROWS", "AdversaryWindow", "Integrity", "security_costs", "verified_processing"]

# The columns of the ``integrity`` table (history/schema.py).
INTEGRITY_ROWS = ("msg_id", "t", "attack", "of_msg", "chain", "detected")
_BODY = struct.Struct("<qqqd")  # kind, key, size, fee: the message's own bytes in what is signed
_TAMPERED, _REPLAYED, _CENSORED = "tampered", "replayed", "censored"
_FLUSH_ROWS = 65_536  # integrity rows held before they are appended to the history


def security_costs(scenario: Scenario) -> CostSource | None:
    """The verification cost the run uses; None without ``[security]``. A cost that cannot
    be found raises ValueError saying what to do."""
    security = scenario.security
    if security is None:
        return None
    return resolve_verify_cost(security.scheme, security.verify_cost)


def verified_processing(scenario: Scenario, costs: CostSource | None) -> Drawn:
    """A node's processing time with the verification of one message added."""
    processing = scenario.network.processing
    return processing if costs is None else shifted(processing, costs.verify_ns)


def _windows(scenario: Scenario) -> tuple[list[TamperFault], list[ReplayFault], list[CensorFault]]:
    tampers: list[TamperFault] = []
    replays: list[ReplayFault] = []
    censors: list[CensorFault] = []
    for spec, _ in concrete_faults(scenario):
        if isinstance(spec, TamperFault):
            tampers.append(spec)
        elif isinstance(spec, ReplayFault):
            replays.append(spec)
        elif isinstance(spec, CensorFault):
            censors.append(spec)
    return tampers, replays, censors


def _active(spec: TamperFault | ReplayFault | CensorFault, t: int, kind: str) -> bool:
    return (spec.at <= t and (spec.duration is None or t < spec.at + spec.duration)
            and (spec.kinds is None or kind in spec.kinds))


class Integrity:
    """The adversary on the link into the leader, and the leader's verification."""

    agents: list[str] = []

    def __init__(self, scenario: Scenario, host: SimHost, seed: np.random.SeedSequence) -> None:
        security = scenario.security
        self.scheme_name = "none" if security is None else security.scheme
        self.chain_id = 1 if security is None else security.chain_id
        self.authenticates = self.scheme_name != "none"
        entropy = int(seed.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        self.real: Scheme | None = (make_scheme(self.scheme_name, entropy)
                                    if security is not None and security.verify == "real" else None)
        self.host = host
        self.rng = np.random.default_rng(seed)
        self.tampers, self.replays, self.censors = _windows(scenario)
        kinds: set[str] = set()
        for spec_kinds in ([spec.kinds for spec in self.tampers] + [spec.kinds for spec in self.replays]
                           + [list(spec.kinds) for spec in self.censors]):
            kinds |= set(MESSAGE_KINDS if spec_kinds is None else spec_kinds)
        if self.real is not None:
            kinds = set(MESSAGE_KINDS)
        self.watched_kinds = kinds
        sequencer = scenario.sequencer
        names = host.node_names
        leaders = [sequencer.node or names[0], *sequencer.standby]
        self.watched = {names.index(name) for name in leaders}
        self.nonces = NonceBook()
        self.judged: set[int] = set()  # messages the leader verified (a crash may bring one again)
        self.copies: dict[int, tuple[int, str]] = {}  # copy -> (original, chain)
        self.originals: dict[int, tuple[int, int, int, int, int, float]] = {}  # what a copy repeats
        self.rows: dict[str, list[Any]] = {name: [] for name in INTEGRITY_ROWS}

    # --- the Reactor protocol -----------------------------------------------------------

    def traffic(self, batches: Iterable[Any]) -> Iterator[Any]:
        return iter(batches)

    def numbered(self, batch: Any) -> None:
        pass

    def committed(self, t: int, msg_ids: list[int]) -> None:
        pass

    def reverted(self, t: int, undone: list[int], gone: list[int]) -> None:
        pass  # the simulator's commits are final

    def validated(self, t: int, node: int, m: int) -> None:
        """The leader verifies ``m`` before its sequencer sees it (other nodes relay)."""
        if node != self.host.leader() or m in self.judged:
            return
        record = self.host.message(m)
        if record is None:
            return
        self.judged.add(m)
        copy = self.copies.get(m)
        kind = MESSAGE_KINDS[record[KIND]]
        tampered = copy is None and self._draw(self.tampers, t, kind) is not None
        if copy is None and not tampered:  # a copy repeats what the sender signed
            replay = self._draw(self.replays, t, kind)
            if replay is not None:
                self.originals[m] = (record[AGENT], record[KIND], record[ORIGIN], record[KEY], record[SIZE],
                                     record[FEE])
                self.host.schedule(t + replay.delay, self._send_copy, m, int(replay.chain == "other"))
        accepted = not self.authenticates or (copy is None and not tampered)
        if self.real is not None:
            real = self._verify(m, record, tampered, copy)
            if real != accepted:
                raise AssertionError(f"message {m}: the {self.scheme_name} library says "
                                     f"{'valid' if real else 'invalid'}, the model the opposite")
        if len(self.rows["msg_id"]) >= _FLUSH_ROWS:
            self.finish(t)  # the rows so far go to the history (a run killed later keeps them)
        if copy is not None or tampered:
            rows = self.rows
            rows["msg_id"].append(m)
            rows["t"].append(t)
            rows["attack"].append(_TAMPERED if tampered else _REPLAYED)
            rows["of_msg"].append(-1 if copy is None else copy[0])
            rows["chain"].append("" if copy is None else copy[1])
            rows["detected"].append(not accepted)
        if not accepted:
            self.host.reject(t, m)
            return
        censor = next((spec for spec in self.censors if _active(spec, t, kind)), None)
        if censor is not None:
            rows = self.rows
            rows["msg_id"].append(m)
            rows["t"].append(t)
            rows["attack"].append(_CENSORED)
            rows["of_msg"].append(-1)
            rows["chain"].append("")
            rows["detected"].append(False)
            if censor.mode == "drop":
                self.host.drop(t, m)
            else:
                self.host.withhold(t, m)
                self.host.schedule(censor.at + censor.duration, self._readmit, m)

    def finish(self, t_end: int) -> None:
        """Append the rows held (at the end, and every ``_FLUSH_ROWS`` during the run)."""
        if self.rows["msg_id"]:
            self.host.append("integrity", self.rows)
            self.rows = {name: [] for name in INTEGRITY_ROWS}

    # --- the adversary ------------------------------------------------------------------

    def _draw(self, specs: list[Any], t: int, kind: str) -> Any:
        """The first active fault of ``specs`` that acts on this message (one uniform drawn
        per active fault until one does; none drawn outside every window)."""
        for spec in specs:
            if _active(spec, t, kind) and (spec.probability >= 1 or self.rng.random() < spec.probability):
                return spec
        return None

    def _readmit(self, t: int, m: int, _b: int, _c: int, _d: int) -> None:
        self.host.readmit(t, m)

    def _send_copy(self, t: int, original: int, other_chain: int, _c: int, _d: int) -> None:
        agent, kind, node, key, size, fee = self.originals[original]
        chain = "other" if other_chain else "same"

        def named(copy: int) -> None:
            self.copies[copy] = (original, chain)

        self.host.send(t, agent, MESSAGE_KINDS[kind], node, key, size, fee, named=named)

    # --- real verification --------------------------------------------------------------

    def _verify(self, m: int, record: list[Any], tampered: bool, copy: tuple[int, str] | None) -> bool:
        """The library's verdict on what the leader received: signed by the sender (on this
        chain, or on another for a copy from there), changed on the way when tampered."""
        scheme = self.real
        assert scheme is not None
        sender = record[AGENT]
        nonce = m if copy is None else copy[0]
        body = _BODY.pack(record[KIND], record[KEY], record[SIZE], record[FEE])
        signed_on = self.chain_id + 1 if copy is not None and copy[1] == "other" else self.chain_id
        tag = scheme.sign(sender, signed_bytes(signed_on, sender, nonce, body))
        received = signed_bytes(self.chain_id, sender, nonce, body)
        if tampered:
            received = received[:-1] + bytes((received[-1] ^ 0x01,))  # the fee's last byte
        return scheme.verify(sender, received, tag) and self.nonces.fresh(sender, nonce, m)


@REACTORS.register("integrity")
def build_integrity(scenario: Scenario, host: Any, seed: np.random.SeedSequence) -> Integrity | None:
    """The adversary and verifier, when the scenario has a tamper or replay fault or
    verifies for real."""
    tampers, replays, censors = _windows(scenario)
    security = scenario.security
    if not tampers and not replays and not censors and (security is None or security.verify != "real"):
        return None
    assert isinstance(host, SimHost)
    return Integrity(scenario, host, seed)


@FAULT_KINDS.register("tamper")
@FAULT_KINDS.register("replay")
@FAULT_KINDS.register("censor")
@FAULT_KINDS.register("oracle")
class AdversaryWindow:
    """A tamper, replay, censor or byzantine-oracle fault's start and end, as events: the
    adversary itself acts on the messages within the window (``Integrity`` at the leader;
    the oracle's schedule, ``market/oracle_attack.py``)."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
