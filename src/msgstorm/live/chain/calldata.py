"""What a transaction carries: msgstorm's header in its input, and the gas that input costs.

Place in the pipeline: under ``live/chain/target.py``, which sends a message as a
transaction whose input is ``encode(...)`` and reads the message back from each block's
transactions with ``decode``. The input is a 4-byte mark, the message's id, kind, agent and
intended time (big-endian, ``HEADER``: 25 bytes), padded with zeros to the message's size;
a transaction whose input does not start with the mark is not msgstorm's (``decode`` says
None). ``intrinsic_gas`` is the gas a plain transfer with this input uses on a chain at
the Prague rules (anvil's default): the larger of 21,000 plus 16 per non-zero and 4 per zero
input byte (EIP-2028) and the calldata floor of EIP-7623, 21,000 plus 10 per token (a zero
byte one token, a non-zero byte four). A transaction whose gas limit is under the floor is
taken into anvil's pool but dropped when a block is built, so the limits here cover it."""

from __future__ import annotations

import struct

__all__ = ["HEADER", "MARK", "decode", "encode", "gas_cap", "intrinsic_gas"]

MARK = b"msgs"
HEADER = struct.Struct(">4sqbiq")  # mark, msg_id, kind, agent, t_intended (ns)
_BASE_GAS = 21_000
_NONZERO_GAS = 16
_ZERO_GAS = 4
_FLOOR_PER_TOKEN = 10  # EIP-7623
_TOKENS_NONZERO = 4


def encode(msg_id: int, kind: int, agent: int, t_intended: int, size: int) -> str:
    """The input of a message's transaction, hex with ``0x``, ``max(size, HEADER.size)`` bytes."""
    header = HEADER.pack(MARK, msg_id, kind, agent, t_intended)
    return "0x" + header.hex() + "00" * max(size - HEADER.size, 0)


def decode(data: str) -> tuple[int, int, int, int] | None:
    """(msg_id, kind, agent, t_intended) of a transaction input (hex, ``0x`` first); None
    when it is not msgstorm's."""
    if len(data) < 2 + 2 * HEADER.size or not data.startswith("0x6d736773"):  # "0x" + MARK.hex()
        return None
    _, msg_id, kind, agent, t_intended = HEADER.unpack(bytes.fromhex(data[2:2 + 2 * HEADER.size]))
    return msg_id, kind, agent, t_intended


def intrinsic_gas(data: str) -> int:
    """The gas of a transfer carrying ``data`` (hex with ``0x``)."""
    raw = bytes.fromhex(data[2:])
    zeros = raw.count(0)
    return _gas(len(raw) - zeros, zeros)


def _gas(nonzero: int, zeros: int) -> int:
    standard = _BASE_GAS + _ZERO_GAS * zeros + _NONZERO_GAS * nonzero
    floor = _BASE_GAS + _FLOOR_PER_TOKEN * (zeros + _TOKENS_NONZERO * nonzero)
    return max(standard, floor)


def gas_cap(size: int) -> int:
    """The most ``intrinsic_gas`` can be for a message of ``size`` bytes (its header's bytes
    all non-zero): a transaction's gas limit when the scenario gives its kind none."""
    return _gas(HEADER.size, max(size - HEADER.size, 0))
