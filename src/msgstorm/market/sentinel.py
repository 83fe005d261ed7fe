"""The sequencer uptime guard (``[market.sentinel]``): when a liquidation may execute.

Place in the pipeline: the market, read by the reactor (``market/reactor.py``) at each
liquidation's commit, and by the analysis for its counts. A rollup protocol reads the
sequencer's status from an uptime feed (Chainlink's L2 sequencer uptime feed). The feed's
updates reach L2 through L1, so when the sequencer returns the ``down`` flag is already there
before any user transaction; from the L2's view the sequencer is down over the outage and up
from its end, which starts the grace period. As Aave v3's PriceOracleSentinel
(``isLiquidationAllowed``) does: a liquidation at ``t`` is allowed unless the sequencer is down
or was back less than ``grace`` ago; an account whose health factor is below the bound is
liquidated anyway. A blocked one executes when the grace ends (its keeper calls again then):
in the first L2 block committed at or after that time (an empty one too: the simulator tells
the reactor of every block), after the block's price updates, at the on-chain price then.

Health factor: the account's equity at the price over its equity at its liquidation line
(its maintenance margin): 1 at the line, 0 at bankruptcy, linear in the price between.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgstorm.faults.schedule import concrete_faults
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.market import SentinelSpec
from msgstorm.scenario.schema import Scenario

__all__ = ["Sentinel", "health_factor", "outage_windows"]


def health_factor(line: float, bankruptcy: float, price: float) -> float:
    """Equity at ``price`` over equity at the liquidation ``line`` (either side: both are
    linear in the price and zero at ``bankruptcy``)."""
    return (price - bankruptcy) / (line - bankruptcy)


def outage_windows(scenario: Scenario) -> list[tuple[int, int]]:
    """(down, up) of every sequencer outage of the scenario, by start."""
    return sorted((spec.at, spec.at + spec.duration) for spec, _ in concrete_faults(scenario)
                  if isinstance(spec, SequencerOutageFault))


@dataclass(frozen=True)
class Sentinel:
    """The guard of one scenario: its outages' windows, grace and bound."""

    windows: list[tuple[int, int]]
    grace_ns: int
    bound: float | None

    @classmethod
    def of(cls, scenario: Scenario, spec: SentinelSpec) -> Sentinel:
        return cls(outage_windows(scenario), spec.grace, spec.health_factor_bound)

    def paused_until(self, t: int) -> int | None:
        """When liquidations may go on again, if they are paused at ``t`` (down, or in the grace)."""
        for down, up in self.windows:
            if down <= t < up + self.grace_ns:
                return up + self.grace_ns
        return None

    def blocked_until(self, t: int, health: float) -> int | None:
        """When a liquidation of an account with health factor ``health`` at ``t`` may execute,
        if not now: paused, and the account not below the bound."""
        until = self.paused_until(t)
        if until is None or (self.bound is not None and health < self.bound):
            return None
        return until
