"""What answers a safe-leverage search of a market: what the probe books cannot carry, and
what venue books the accounts share.

Place in the pipeline: read by ``sweep/leverage.py``'s ``choose_method`` before any run, from
the scenario alone (the mechanism's class flags through the registry, ``market/liquidation.py``).
"""

from __future__ import annotations

from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS
from msgstorm.scenario.schema import Scenario

__all__ = ["books_shared", "probes_cannot_answer"]


def probes_cannot_answer(scenario: Scenario) -> str | None:
    """What of ``scenario``'s market the probe books cannot answer for, or None: they carry
    the liquidations (whole, partial, close factor) at the index of isolated accounts, each
    book with its own venue's books (fund, deleveraging, socialised loss:
    ``market/probes.py``)."""
    market = scenario.market
    if market is None:
        return None
    rule = market.liquidation
    if rule is not None and not LIQUIDATION_MECHANISMS[rule.mechanism].alone:
        if LIQUIDATION_MECHANISMS[rule.mechanism].english:
            return (f"liquidation.mechanism {rule.mechanism!r} (its auctions draw on the bidding "
                    f"keepers' capital, which every vault shares: a vault's deficit depends on the "
                    f"others')")
        return (f"liquidation.mechanism {rule.mechanism!r} (its auctions are taken by the "
                f"keepers every account shares)")
    if market.mark is not None:
        return "[market.mark]"
    if any(group.margin == "cross" for group in market.accounts):
        return "cross-margin accounts (margin = \"cross\")"
    return None


def books_shared(scenario: Scenario) -> str | None:
    """What of the venue's books of ``scenario``'s market the accounts share (an insurance
    fund, a keeper share below 1 that feeds one, a cover from other accounts), or None."""
    market = scenario.market
    rule = None if market is None else market.liquidation
    if rule is None:
        return None
    shared = [*(["an insurance fund"] if rule.insurance_fund > 0 or rule.keeper_share < 1 else []),
              *([f"on_empty = {rule.on_empty!r}"] if rule.on_empty != "none" else [])]
    return " and ".join(shared) if shared else None
