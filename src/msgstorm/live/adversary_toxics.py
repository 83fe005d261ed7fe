"""The adversary on a live link: toxics that alter or replay whole NATS publishes.

Place in the pipeline: beside ``live/toxics.py``, registered in ``TOXICS`` the same way and
run by the fault proxy on a client's link. The proxy's ``corrupt`` toxic changes one byte of
a read wherever it falls, the protocol's framing included (the server then drops the
connection), so it cannot say how many messages it changed. These two read the NATS
protocol's ``PUB <subject> [reply] <bytes>\\r\\n<payload>\\r\\n`` frames on the publisher's
upstream and act on whole messages, each with ``probability`` (drawn per message from the
toxic's seeded stream), counting what they did in the ``fault_end`` event:

- ``tamper``: changes the message's key (payload bytes 8 and 9, one same bit in each, so the
  XOR check byte of ``live/payload.py`` still holds: a checksum is not authentication). A
  consumer that verifies signatures refuses the message; one that does not takes it;
- ``replay``: sends a copy of the whole frame again right after it. A consumer that checks
  nonces refuses the copy; one that does not receives the message twice.

Other traffic (the protocol's other operations, other protocols) passes unchanged. A frame
split across reads is followed across them (``_Frames``, the state kept per connection);
a toxic that starts in the middle of a frame waits for the next ``PUB`` at a line's start.
Written by hand: a few lines of framing no library offers for a proxy's byte stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from msgstorm.live.toxics import Toxic, ToxicState, toxic
from msgstorm.scenario.schema import ToxicFault

__all__ = ["Replay", "Tamper"]

_PUB = b"PUB "
_CRLF = b"\r\n"
_KEY_BYTES = (8, 9)  # payload positions a tamper changes (the key's two low bytes)


class _Frames:
    """Where one connection's upstream is in the NATS framing."""

    def __init__(self) -> None:
        self.synced = False  # a toxic that starts mid-stream waits for a PUB at a line's start
        self.line = b""  # a control line read so far
        self.remaining = 0  # bytes of the current payload and its CRLF still to come
        self.offset = 0  # position in the current payload
        self.tamper = False  # this message is being changed
        self.copy: list[bytes] | None = None  # this message's frame so far, to send again


@dataclass(frozen=True)
class _FrameToxic(Toxic):
    """A toxic acting on whole NATS publishes: the proxy hands it every read, it draws
    ``probability`` per message."""

    per_message: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: ToxicFault) -> Toxic:
        if spec.direction != "upstream" or spec.link != "publisher":
            raise ValueError(f"toxic {cls.kind!r} acts on the publisher's messages: give link = \"publisher\" "
                             "and direction = \"upstream\"")
        return cls(direction="upstream", probability=spec.probability)

    def chosen(self, state: ToxicState) -> bool:
        return self.probability >= 1.0 or state.rng.random() < self.probability

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        frames: _Frames = state.frames if state.frames is not None else _Frames()
        state.frames = frames
        out: list[bytes] = []
        data = bytearray(chunk)
        i, n = 0, len(data)
        if not frames.synced:
            at = 0 if data.startswith(_PUB) else data.find(_CRLF + _PUB)
            if at < 0:
                return [(0, chunk)]
            frames.synced = True
            start = at if at == 0 else at + 2
            out.append(bytes(data[:start]))
            i = start
        while i < n:
            if frames.remaining:
                take = min(frames.remaining, n - i)
                if frames.tamper:
                    for position in _KEY_BYTES:
                        if frames.offset <= position < frames.offset + take:
                            data[i + position - frames.offset] ^= 0x04
                piece = bytes(data[i:i + take])
                out.append(piece)
                if frames.copy is not None:
                    frames.copy.append(piece)
                frames.offset += take
                frames.remaining -= take
                i += take
                if not frames.remaining:
                    self._frame_done(frames, state, out)
                continue
            end = data.find(b"\n", i)
            if end < 0:
                frames.line += bytes(data[i:])
                out.append(bytes(data[i:]))
                break
            line = frames.line + bytes(data[i:end + 1])
            out.append(bytes(data[i:end + 1]))
            frames.line = b""
            i = end + 1
            if line.startswith(_PUB):
                self._frame_start(frames, state, line)
        return [(0, b"".join(out))]

    def _frame_start(self, frames: _Frames, state: ToxicState, line: bytes) -> None:
        size = int(line.split()[-1])
        frames.remaining, frames.offset = size + 2, 0
        frames.tamper, frames.copy = False, None
        if self.chosen(state):
            self.begin(frames, state, line, size)

    def begin(self, frames: _Frames, state: ToxicState, line: bytes, size: int) -> None:
        """This message was drawn: what the toxic does to it."""

    def _frame_done(self, frames: _Frames, state: ToxicState, out: list[bytes]) -> None:
        if frames.copy is not None:
            out.append(b"".join(frames.copy))
            state.stats.replayed_messages += 1
        frames.tamper, frames.copy = False, None


@toxic("tamper")
@dataclass(frozen=True)
class Tamper(_FrameToxic):
    summary: ClassVar[str] = ("NATS publishes (link publisher, upstream): a message's key changed, its check byte "
                              "still right; `probability` per message")

    def begin(self, frames: _Frames, state: ToxicState, line: bytes, size: int) -> None:
        if size > max(_KEY_BYTES):
            frames.tamper = True
            state.stats.tampered_messages += 1


@toxic("replay")
@dataclass(frozen=True)
class Replay(_FrameToxic):
    summary: ClassVar[str] = ("NATS publishes (link publisher, upstream): a message sent again right after it; "
                              "`probability` per message")

    def begin(self, frames: _Frames, state: ToxicState, line: bytes, size: int) -> None:
        frames.copy = [line]
