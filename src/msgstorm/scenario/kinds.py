"""The message kinds every scenario speaks of: one list, imported by the scenario's schema
(``schema.py``) and the market's (``market.py``) alike.

Place in the pipeline: scenario validation. A kind's position in ``MESSAGE_KINDS`` is its
code in the simulator's records and the history's dictionary (``sim/state.py``), so the
order is fixed: new kinds go at the end.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["MESSAGE_KINDS", "MessageKind"]

MessageKind = Literal["order", "cancel", "quote", "liquidation", "price", "spam"]
MESSAGE_KINDS: tuple[str, ...] = get_args(MessageKind)
