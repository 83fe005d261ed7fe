"""What a validated ``[market]`` section implies beyond its fields: the depth curve's exponent,
the leverage at which an account opens on its liquidation line, and the checks across
fields that the loader runs (``cross_margin_problems``, ``leverage_problems``).

Place in the pipeline: beside the ``[market]`` schema (``scenario/market.py``, which
re-exports these names); read by the loader, the market layer (``msgstorm.market``) and the
safe-leverage sweep.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS

if TYPE_CHECKING:
    from msgstorm.scenario.market import MarketSpec

__all__ = ["cross_margin_problems", "impact_exponent", "leverage_limit", "leverage_problems"]


def cross_margin_problems(market: MarketSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """``(location, message)`` for each cross-margin setting that cannot run: a group's
    instruments unknown or repeated, loaded from a file, an isolated group naming several, or
    a market whose other rules price one position at a time (``market/cross.py`` says what a
    cross account is). Checked by the loader, as ``leverage_problems``, and by the reactor."""
    names = [instrument.name for instrument in market.instruments]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    cross = [index for index, group in enumerate(market.accounts) if group.margin == "cross"]
    for index, group in enumerate(market.accounts):
        where: tuple[str | int, ...] = ("market", "accounts", index)
        if group.margin == "isolated":
            if group.instruments is not None:
                problems.append(((*where, "instruments"), "only a cross-margin group holds several instruments "
                                 "(set margin = \"cross\", or name one with 'instrument')"))
            continue
        if group.instrument is not None:
            problems.append(((*where, "instrument"), "a cross-margin group names its instruments with "
                             "'instruments'"))
        if group.file is not None:
            problems.append(((*where, "file"), "cross-margin accounts are drawn, not loaded from a file"))
        chosen = names if group.instruments is None else group.instruments
        if [name for name in chosen if name not in names] or not chosen or len(set(chosen)) != len(chosen):
            problems.append(((*where, "instruments"), f"expected distinct names among {names}, got {chosen}"))
    if not cross:
        return problems
    first: tuple[str | int, ...] = ("market", "accounts", cross[0], "margin")
    rule = market.liquidation
    if rule is not None and (not LIQUIDATION_MECHANISMS[rule.mechanism].cross or rule.on_empty != "none"):
        problems.append((first, f"a cross-margin account is liquidated whole or partially (positions closed, "
                                f"largest requirement first) with on_empty = \"none\"; liquidation.mechanism is "
                                f"{rule.mechanism!r}, on_empty {rule.on_empty!r}"))
    for table, present in (("funding", market.funding), ("mark", market.mark), ("sentinel", market.sentinel),
                           ("probes", market.probes)):
        if present is not None:
            problems.append((first, f"cross-margin accounts cannot be combined with [market.{table}] yet (it "
                                    f"reads one position per account)"))
    return problems


def impact_exponent(market: MarketSpec) -> float:
    """The exponent of ``market``'s depth curve: 1 (linear) without ``[market.liquidity]``."""
    return 1.0 if market.liquidity is None else market.liquidity.impact_exponent()


def leverage_limit(maintenance_margin: float) -> float:
    """1 / ``maintenance_margin``: an account opened at this leverage or above has equity at
    or below its maintenance margin at entry, i.e. it opens on or past its liquidation line
    (infinite without a maintenance margin)."""
    return math.inf if maintenance_margin <= 0 else 1.0 / maintenance_margin


def leverage_problems(market: MarketSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """``(location, message)`` for each drawn accounts group whose leverage cannot be right:
    a cap below the median (every account would sit at the cap), a floor above it (every
    account at the floor), or a highest leverage (the cap, or the median when
    ``leverage_sigma`` is 0) at or above ``leverage_limit``. Loaded
    groups (``file``) are not checked here: their leverage is known only when the file is read."""
    limit = leverage_limit(market.maintenance_margin)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if market.probes is not None and market.probes.leverages[-1] >= limit:
        problems.append((("market", "probes", "leverages"),
                         f"{market.probes.leverages[-1]:g} is at or above 1 / maintenance_margin = {limit:g}: a "
                         f"probe at that leverage opens on or past its liquidation line; keep every leverage below "
                         f"{limit:g}"))
    for index, group in enumerate(market.accounts):
        if group.file is not None:
            continue
        where: tuple[str | int, ...] = ("market", "accounts", index)
        if group.leverage_cap < group.leverage_median:
            problems.append(((*where, "leverage_cap"),
                             f"{group.leverage_cap:g} is below leverage_median {group.leverage_median:g}: every "
                             f"account would be drawn at the cap; set leverage_cap at or above leverage_median"))
            continue
        if group.leverage_floor is not None and group.leverage_floor > group.leverage_median:
            problems.append(((*where, "leverage_floor"),
                             f"{group.leverage_floor:g} is above leverage_median {group.leverage_median:g}: every "
                             f"account would be drawn at the floor; set leverage_floor at or below leverage_median"))
            continue
        field, highest = (("leverage_cap", group.leverage_cap) if group.leverage_sigma > 0
                          else ("leverage_median", group.leverage_median))
        if highest >= limit:
            default = "" if field in group.model_fields_set else " (the default)"
            problems.append(((*where, field),
                             f"{highest:g}{default} is at or above 1 / maintenance_margin = {limit:g} "
                             f"(maintenance_margin {market.maintenance_margin * 100:g}%): an account drawn at that "
                             f"leverage opens on or past its liquidation line; set {field} below {limit:g}"))
    return problems
