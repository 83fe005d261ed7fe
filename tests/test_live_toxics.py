"""The fault proxy's toxics as a registry: every list of kinds is read from ``TOXICS``, and a
toxic's draws are seeded from the run's seed and the fault's id (through the nemesis and the
proxy process, on loopback, no broker)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.faults.toxic import toxic_of
from msgstorm.live.proxy_process import ProxyProcess
from msgstorm.live.toxics import TOXICS, Toxic, from_wire
from msgstorm.scenario import reference
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import TOXIC_SETTINGS, ToxicFault

# A valid entry of each kind (a new toxic must be given one here).
_ENTRIES: dict[str, dict[str, object]] = {
    "latency": {"latency": "100ms", "jitter": "10ms"},
    "bandwidth": {"rate": "8Mbit/s"},
    "blackhole": {},
    "reset_peer": {"timeout": "1s"},
    "timeout": {"timeout": 0},
    "slicer": {"slice_size": 10, "slice_delay": "1ms"},
    "slow_close": {"close_delay": "1s"},
    "corrupt": {},
    "tamper": {"link": "publisher"},
    "replay": {"link": "publisher"},
}
# A valid value of each setting.
_SAMPLE: dict[str, object] = {"latency": "1ms", "jitter": "1ms", "rate": "1Mbit/s", "timeout": "1s", "slice_size": 8,
                              "slice_delay": "1ms", "close_delay": "1s"}


def _entry(kind: str, **settings: object) -> ToxicFault:
    return ToxicFault.model_validate({"kind": "toxic", "at": 0, "toxic": kind, **settings})


@pytest.mark.parametrize("kind", list(TOXICS))
def test_each_registered_kind_is_a_toxic_the_schema_takes_and_the_wire_carries(kind: str) -> None:
    cls = TOXICS[kind]
    assert issubclass(cls, Toxic) and cls.kind == kind
    assert set(cls.settings) <= set(TOXIC_SETTINGS)
    toxic = toxic_of(_entry(kind, direction="upstream", probability=0.5, **_ENTRIES[kind]))
    assert type(toxic) is cls and toxic.direction == "upstream" and toxic.probability == 0.5
    assert from_wire(toxic.wire()) == toxic
    unread = [name for name in TOXIC_SETTINGS if name not in cls.settings]
    if unread:  # a setting it does not read is refused, naming what it reads
        with pytest.raises(ValueError, match=f"'{unread[0]}' does not apply to toxic '{kind}'"):
            _entry(kind, **_ENTRIES[kind], **{unread[0]: _SAMPLE[unread[0]]})


def test_the_settings_are_the_entrys_own_fields_and_units_reach_the_proxy() -> None:
    common = {"kind", "at", "duration", "toxic", "link", "between", "direction", "probability"}
    assert set(TOXIC_SETTINGS) == set(ToxicFault.model_fields) - common
    bandwidth = toxic_of(_entry("bandwidth", rate="8Mbit/s"))
    assert bandwidth.wire() == {"kind": "bandwidth", "direction": "both", "probability": 1.0,
                                "rate_bytes_per_s": 1_000_000.0}
    assert toxic_of(_entry("slicer")).wire()["slice_bytes"] == 64


def test_an_unknown_kind_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="unknown toxic 'latncy'; one of latency, bandwidth, blackhole"):
        _entry("latncy")
    with pytest.raises(ValueError, match="toxic 'bandwidth' needs 'rate'"):
        _entry("bandwidth")


def test_the_reference_lists_every_registered_kind() -> None:
    text = reference.render()
    row = next(line for line in text.splitlines() if line.startswith("| `toxic` |"))
    for kind, cls in TOXICS.items():
        assert f"`{kind}`: {cls.summary}" in row, kind


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _corrupted(run_seed: int, fault_id: int, directory: Path) -> list[bytes]:
    """A corrupt toxic (half the reads) started through a fault handle for a run seeded ``run_seed``,
    through the proxy process: what 40 reads of 100 zero bytes, each echoed before the next,
    came back as."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = ProxyProcess({"publisher-0": ("127.0.0.1", server.sockets[0].getsockname()[1])}, directory)
    ports = await proxy.start(30)
    handle = SimpleNamespace(proxy=proxy, links={"publisher": ["publisher-0"], "consumers": []},
                             t0_ns=time.monotonic_ns(), healing=False, seed=run_seed)
    spec = _entry("corrupt", link="publisher", direction="upstream", probability=0.5)
    kind = LIVE_FAULT_KINDS["toxic"]
    await kind.start(handle, FaultOp(0, 0, "start", fault_id, spec))
    reader, writer = await asyncio.open_connection("127.0.0.1", ports["publisher-0"])
    came_back = []
    for _ in range(40):
        writer.write(bytes(100))
        await writer.drain()
        got = b""
        while len(got) < 100:
            got += await asyncio.wait_for(reader.read(100 - len(got)), 10)
        came_back.append(got)
    stats = await kind.end(handle, FaultOp(0, 1, "end", fault_id, spec))
    # Each read corrupted changed one byte of it (the stats come from the proxy's own count).
    assert stats["corrupted_chunks"] == sum(b != bytes(100) for b in came_back)
    assert all(sum(x != 0 for x in b) <= 1 for b in came_back)
    writer.close()
    await proxy.close()
    server.close()
    await server.wait_closed()
    return came_back


@pytest.mark.slow
def test_a_toxic_draws_from_the_runs_seed_and_its_fault(tmp_path: Path) -> None:
    first = asyncio.run(_corrupted(1, 3, tmp_path))
    again = asyncio.run(_corrupted(1, 3, tmp_path))
    other_seed = asyncio.run(_corrupted(2, 3, tmp_path))
    other_fault = asyncio.run(_corrupted(1, 4, tmp_path))
    changed = sum(b != bytes(100) for b in first)
    assert 5 <= changed <= 35  # about half the reads, one byte each
    assert again == first
    assert other_seed != first and other_fault != first
