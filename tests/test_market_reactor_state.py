"""The market reactor's parts (``market/reactor_state.py``): what they declare is what it sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msgstorm import run
from msgstorm.market import reactor as reactor_module
from msgstorm.market.reactor import MarketReactor
from msgstorm.market.reactor_state import ReactorState
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_every_name_the_reactors_parts_declare_is_one_the_reactor_sets(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The mixins read the reactor's state through ``ReactorState``'s declarations, which mypy
    cannot tie to an assignment: a name the reactor renamed or stopped setting would fail only
    when a rarely taken path (a reverted chain, an English auction) reads it. A Dutch-auction
    run's reactor, at its end, holds every declared name (``auctions`` set, ``flips`` None)."""
    seen: list[MarketReactor] = []
    finish = MarketReactor.finish

    def kept(self: MarketReactor, t_end: int) -> None:
        seen.append(self)
        finish(self, t_end)

    monkeypatch.setattr(reactor_module.MarketReactor, "finish", kept)
    run(load_scenario(str(EXAMPLES / "venue-dutch.toml"), ["market.accounts.0.count=50"]), tmp_path / "run")
    (reactor,) = seen
    declared = {name for part in MarketReactor.__mro__ if issubclass(part, ReactorState)
                for name in vars(part).get("__annotations__", {})}
    assert len(declared) > 40  # the shared state, not an empty set by accident
    assert sorted(name for name in declared if not hasattr(reactor, name)) == []
    held: dict[str, Any] = vars(reactor)
    assert held["auctions"] is not None and held["flips"] is None and held["topups"] is None
