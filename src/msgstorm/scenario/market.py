"""The ``[market]`` section: prices, an oracle, accounts, keepers: what delay costs.

Place in the pipeline: part of the scenario schema (``schema.Scenario.market``), read by the
market layer (``msgstorm.market``) that the simulator plugs in as a reactor. Quantities are
converted here to fixed units like the rest of the schema: durations in ns, drift per second,
volatility per square root of a second, fractions in [0, 1].

Drift and volatility carry their time unit (``"80%/y"``: 80% a year; volatility scales with
the square root of time, so 80%/y is 0.8 / sqrt(31,536,000) per sqrt(second)); a year is
365 days.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from msgstorm.rules.correlation import correlation_problem
from msgstorm.scenario.distributions import (
    Constant,
    DurationDist,
    DurationNs,
    NumberDist,
    SizeBytes,
)
from msgstorm.scenario.kinds import MessageKind
from msgstorm.scenario.market_checks import (
    cross_margin_problems,
    impact_exponent,
    leverage_limit,
    leverage_problems,
)
from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS
from msgstorm.scenario.spec import Fraction, Spec
from msgstorm.scenario.units import parse_fraction

__all__ = ["AccountsSpec", "CapRaise", "cross_margin_problems", "AuctionOrdersSpec", "SentinelSpec", "FrontRunnerSpec", "FundingSpec", "LiquiditySpec", "MarkSpec", "InstrumentSpec", "JumpsSpec", "KeeperSpec", "LiquidationSpec", "MarketSpec", "OracleSpec", "ProbeSpec", "PUBLISHED_FIGURES", "PublishedSpec", "ShockSpec",
           "TopUpSpec", "impact_exponent", "leverage_limit", "leverage_problems", "parse_per_time"]

_PER_S = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
_PER_TIME_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*/\s*(s|min|h|d|y)\s*$")


def parse_per_time(value: object, sqrt_time: bool = False) -> float:
    """``"80%/y"`` or ``"0.5/d"`` as a rate per second (per sqrt(second) with ``sqrt_time``)."""
    if isinstance(value, str):
        match = _PER_TIME_RE.match(value)
        if match:
            number = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
            seconds = _PER_S[match.group(3)]
            return number / (seconds ** 0.5 if sqrt_time else seconds)
    raise ValueError(f"expected a number with its time unit such as '80%/y', '5%/d' or '0.1/h' "
                     f"(s, min, h, d, y), got {value!r}")


def _drift(value: object) -> float:
    return parse_per_time(value)


def _volatility(value: object) -> float:
    volatility = parse_per_time(value, sqrt_time=True)
    if volatility < 0:
        raise ValueError(f"a volatility is at least 0, got {value!r}")
    return volatility


def _signed_fraction(value: object) -> float:
    """"-5%" or -0.05: a fraction that may be negative (a jump's mean log size)."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_fraction(value.strip()[1:])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return -parse_fraction(-value)
    return parse_fraction(value)


def _rate(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    rate = parse_per_time(value)
    if rate < 0:
        raise ValueError(f"a rate is at least 0, got {value!r}")
    return rate


Drift = Annotated[float, BeforeValidator(_drift)]
Volatility = Annotated[float, BeforeValidator(_volatility)]
SignedFraction = Annotated[float, BeforeValidator(_signed_fraction)]
PerSecond = Annotated[float, BeforeValidator(_rate)]
Duration = DurationNs


class ShockSpec(Spec):
    """A crash: the price falls by ``fall`` over ``over`` from ``at`` (log-linearly; ``over``
    0 is a gap at ``at``)."""

    at: Duration = Field(ge=0)
    fall: Fraction
    over: Duration = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ShockSpec:
        if self.fall >= 1.0:
            raise ValueError("'fall' must be below 100% (a price stays above 0)")
        return self


class JumpsSpec(Spec):
    """Compound Poisson jumps: ``rate`` jumps per unit of time, each of log size
    normal(``mean``, ``stddev``)."""

    rate: PerSecond
    mean: SignedFraction = 0.0
    stddev: Fraction = 0.0


class InstrumentSpec(Spec):
    """One instrument's true price: geometric Brownian motion from ``price`` with ``drift``
    and ``volatility``, plus ``shocks`` and ``jumps``; or a ``replay`` of a series."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    price: float = Field(default=1000.0, gt=0)
    drift: Drift = 0.0
    volatility: Volatility = 0.0
    shocks: list[ShockSpec] = Field(default_factory=list)
    jumps: JumpsSpec | None = None
    # A CSV (columns t, price; t a duration such as "1.5s" or ns) or Parquet file (t in ns):
    # the price is the last row's at or before each step. Replaces the model above.
    replay: str | None = None


class OracleSpec(Spec):
    """Oracle agents: a ``price`` message per instrument whenever the true price moved by
    ``deviation`` since the last update, or ``heartbeat`` passed (checked each step)."""

    name: str = Field(default="oracle", min_length=1)
    node: str | None = None  # default: the network's first node
    heartbeat: Duration = Field(default=3_600_000_000_000, gt=0)
    deviation: Fraction = 0.005
    size: SizeBytes = 200
    fee: float = Field(default=1.0, ge=0)


class AccountsSpec(Spec):
    """A group of accounts with one position each on ``instrument``: leverage lognormal
    (``leverage_median``, ``leverage_sigma``) capped at ``leverage_cap`` (and raised to
    ``leverage_floor`` when one is given), collateral from a
    distribution, long with probability ``long_share``; or loaded from ``file`` (CSV or
    Parquet: side (+1 long, -1 short, or long/short), size, entry, collateral). With ``margin
    = "cross"``, one position on each of ``instruments`` (side and leverage drawn per
    position) behind one collateral (``market/cross.py``)."""

    count: int = Field(default=10_000, ge=1)
    instrument: str | None = None  # default: the first instrument
    leverage_median: float = Field(default=5.0, gt=0)
    leverage_sigma: float = Field(default=0.5, ge=0, le=5)
    leverage_cap: float = Field(default=50.0, gt=0)  # below 1 / maintenance_margin: leverage_problems
    # The lowest leverage a lognormal draw gives (none: no floor). A leverage below 1 is a
    # position smaller than its collateral, which a perpetual venue allows; a lending
    # market's vault borrows (leverage above 1, debt (leverage - 1) x collateral).
    leverage_floor: float | None = Field(default=None, gt=0, exclude_if=lambda floor: floor is None)
    collateral: NumberDist = Field(default_factory=lambda: Constant(value=10_000.0))
    long_share: Fraction = 1.0
    file: str | None = None
    # ``cross``: each account holds one position on each of ``instruments`` behind one
    # collateral (``market/cross.py``); ``isolated``: one position on ``instrument``.
    margin: Literal["isolated", "cross"] = Field(
        default="isolated", exclude_if=lambda margin: margin == "isolated",
        description="`isolated`: one position on `instrument` per account; `cross`: one position on each of "
        "`instruments` behind one collateral, judged on their summed margin (docs/model.md, \"Cross margin\")")
    instruments: list[str] | None = Field(
        default=None, exclude_if=lambda names: names is None,
        description="a cross account's instruments, one position each (side, leverage drawn per position; "
        "size = leverage x collateral / (positions x price)); none: every instrument")


class CapRaise(Spec):
    """``[[market.keepers.cap_raised]]``: from ``at`` (run time) a fee-aware keeper's ceiling
    is ``cap``, as an operator who raised it during the day."""

    at: DurationNs = Field(ge=0)
    cap: float = Field(gt=0)


class KeeperSpec(Spec):
    """Keepers: each watches the prices delivered to its own node and sends a ``liquidation``
    message for every account it sees past its maintenance line, ``reaction`` later. Fee:
    ``fee`` (fixed), or with ``fee_aware`` ``fee_multiple`` x the base fee when it sends,
    at most ``fee_cap`` (from each ``cap_raised`` step's time, its ``cap``). In an English auction it bids the market's price x (1 -
    ``discount``) a unit; each keeper has a ``gas_budget`` for its fees and ``capital`` for
    its bids (none: without limit): out of either, it stops."""

    name: str = Field(default="keepers", min_length=1)
    count: int = Field(default=1, ge=1, le=10_000)
    region: str | None = None
    node: str | None = None
    reaction: DurationDist = Field(default_factory=lambda: Constant(value=100_000_000))
    fee: float = Field(default=1.0, ge=0)
    fee_aware: bool = False
    fee_multiple: float = Field(default=2.0, gt=0)
    fee_cap: float = Field(default=1e9, gt=0)
    cap_raised: list[CapRaise] = Field(default_factory=list)
    size: SizeBytes = 300
    race: bool = True
    # An English auction's bid rule: the most it pays a unit is the market's price when it
    # bids x (1 - ``discount``) (1: it bids zero).
    discount: Fraction = 0.0
    # Budgets, per keeper (``market/keepers_budget.py``; none: without limit): the fees it can
    # pay (out of gas it sends nothing more) and the capital its English bids lock.
    gas_budget: float | None = Field(default=None, ge=0)
    capital: float | None = Field(default=None, ge=0)
    # Its transactions in nonce order (``market/nonces.py``): one out at a time, a stuck one
    # holding back the later ones until it is mined.
    nonce_order: bool = False

    @model_validator(mode="after")
    def _check(self) -> KeeperSpec:
        if self.region is not None and self.node is not None:
            raise ValueError("give 'region' or 'node', not both")
        times = [step.at for step in self.cap_raised]
        if times != sorted(set(times)):
            shown = ", ".join(f"{at / 1e9:g} s" for at in times)
            raise ValueError(f"cap_raised: expected steps in increasing 'at' without repeats, got at = {shown}")
        if self.cap_raised and not self.fee_aware:
            raise ValueError("cap_raised: only a fee_aware keeper has a ceiling to raise")
        return self

    def cap_at(self, t_ns: int) -> float:
        """Its ceiling at ``t_ns``: ``fee_cap``, or the last ``cap_raised`` step's cap at or before it."""
        cap = self.fee_cap
        for step in self.cap_raised:
            if step.at > t_ns:
                break
            cap = step.cap
        return cap

    def fee_at(self, base_fee: float | None, t_ns: int = 0) -> float:
        """Its fee for a liquidation sent at ``t_ns`` while the base fee is ``base_fee`` (None:
        no base fee): ``fee``, or with ``fee_aware`` ``fee_multiple`` x the base fee, at most
        its ceiling then (``cap_at``)."""
        if not self.fee_aware or base_fee is None:
            return self.fee
        return min(self.cap_at(t_ns), self.fee_multiple * base_fee)

    def bid_value(self, market_price: float) -> float:
        """The most it pays a unit in an English auction when the market is at ``market_price``."""
        return market_price * (1.0 - self.discount)


class TopUpSpec(Spec):
    """Traders who top up: a share ``probability`` of the accounts (drawn once each) add
    collateral when a price delivered to ``node`` puts them within ``near`` of their line,
    ``reaction`` later, through a message; enough to bring their leverage at the on-chain
    price back to ``to_leverage``. Once per account."""

    name: str = Field(default="traders-topping-up", min_length=1)
    probability: Fraction = 0.5
    near: Fraction = 0.02
    reaction: DurationDist = Field(default_factory=lambda: Constant(value=1_000_000_000))
    to_leverage: float = Field(default=2.0, gt=0)
    node: str | None = None  # default: the network's first node
    size: SizeBytes = 250
    fee: float = Field(default=1.0, ge=0)


class FrontRunnerSpec(Spec):
    """Front-runners: each watches the messages validated at node ``watch`` for victims
    (``kind``, at least ``min_size``) and, ``reaction`` later, races each with an order of
    its own sent from ``node`` (``share`` of the victim's notional) at ``fee_multiple`` x
    the victim's fee. Watching near the victims and sending from next to the sequencer is
    a latency advantage (``reaction`` then includes the news's trip between them). With
    ``sandwich`` it also sends the opposite order when the victim's reaches ``node``, at
    ``back_fee_multiple`` x the victim's fee, and wins only with the victim's in between. A race is
    won when its order takes effect before the victim's (under the queue policy's rule); it
    earns its notional x the price impact of the victim's order (the market's linear depth
    model: ``slippage_bps`` per ``depth`` of notional). A message's notional is its size x
    ``notional_per_byte`` (the order flow's sizes stand for its orders' sizes)."""

    name: str = Field(default="frontrunner", min_length=1)
    node: str | None = None  # where its orders enter; default: the sequencer's node
    watch: str | None = None  # where it watches; default: ``node``
    kind: MessageKind = "order"
    min_size: SizeBytes = 0
    notional_per_byte: float = Field(default=100.0, gt=0)
    share: float = Field(default=1.0, gt=0)
    fee_multiple: float = Field(default=2.0, gt=0)
    reaction: DurationDist = Field(default_factory=lambda: Constant(value=100_000))
    size: SizeBytes = 200
    sandwich: bool = False
    back_fee_multiple: float = Field(default=0.5, gt=0)


class AuctionOrdersSpec(Spec):
    """The limit orders behind the order flow, for a frequent batch auction
    (``sequencer.policy = "batch_auction"``; under any other policy nothing is drawn). Every
    ``order`` message of a traffic agent is a limit order on ``instrument``: a buy with
    probability ``buy_share``, else a sell; its limit price the instrument's true price when
    it is sent x (1 + side x o / 10,000), o normal with mean ``limit_offset_bps`` and standard
    deviation ``limit_spread_bps`` (a positive offset: buys bid above the true price and sells
    ask below it, so more orders cross); its quantity a draw of ``quantity`` (units of the
    instrument)."""

    instrument: str | None = None  # default: the first instrument
    buy_share: Fraction = 0.5
    limit_offset_bps: float = Field(default=0.0, ge=-10_000, le=10_000)
    limit_spread_bps: float = Field(default=10.0, ge=0, le=10_000)
    quantity: NumberDist = Field(default_factory=lambda: Constant(value=1.0))


class ProbeSpec(Spec):
    """Probe books that ride along a run (``msgstorm safe-leverage``): at each of
    ``leverages``, a copy of every account (its instrument, side, entry and collateral) at
    that leverage, watched by the same keepers at the same nodes and liquidated by the same
    rule, so one run gives bad debt at every leverage (``market/probes.py``). A share
    ``traffic_share`` of their liquidations are sent as messages of their own (they load the
    network, and the run is no longer the one without probes); the others send nothing and
    commit with the first block holding a message the queue policy ranks after them (their
    *carrier*). The real accounts, their keepers' draws and the network are untouched: with
    ``traffic_share = 0`` the history but the probes' own table is the
    run's without them."""

    leverages: list[Annotated[float, Field(gt=0)]] = Field(min_length=1, max_length=256)
    traffic_share: Fraction = 0.0

    @model_validator(mode="after")
    def _check(self) -> ProbeSpec:
        if sorted(set(self.leverages)) != self.leverages:
            raise ValueError(f"leverages: expected increasing values without repeats, got {self.leverages}")
        return self


PUBLISHED_FIGURES = ("zero_bid_share", "zero_bid_units", "zero_bid_value", "zero_bid_lots",
                     "top_zero_bidder_share", "returned_share", "returned_share_won", "deficit")


def _band(value: object) -> object:
    """A band's bounds as numbers: ``"25%"`` is 0.25, a number stays."""
    if isinstance(value, (list, tuple)):
        return [parse_fraction(bound) if isinstance(bound, str) else bound for bound in value]
    return value


class PublishedSpec(Spec):
    """Figures published for the day a run replays, printed beside the run's own
    (``[market.liquidation.published]``): what each is and where it was published. A figure
    the scenario's unknowns were ``fitted`` to is kept apart from one it ``checked``
    (predicted): the two lists are disjoint, and each figure in them has a ``band`` (the
    range the run's value must fall in to agree) and may name its own ``sources`` entry."""

    zero_bid_share: Fraction | None = None
    zero_bid_units: float | None = Field(default=None, ge=0)
    zero_bid_value: float | None = Field(default=None, ge=0)
    zero_bid_lots: float | None = Field(default=None, ge=0)
    top_zero_bidder_share: Fraction | None = None
    returned_share: Fraction | None = None
    returned_share_won: Fraction | None = None
    deficit: float | None = Field(default=None, ge=0)
    source: str = Field(min_length=1)
    sources: dict[str, str] = Field(default_factory=dict)
    bands: dict[str, Annotated[tuple[float, float], BeforeValidator(_band)]] = Field(default_factory=dict)
    fitted: list[str] = Field(default_factory=list)
    checked: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _roles(self) -> PublishedSpec:
        for field, names in (("fitted", self.fitted), ("checked", self.checked), ("bands", list(self.bands)),
                             ("sources", list(self.sources))):
            for name in names:
                if name not in PUBLISHED_FIGURES:
                    raise ValueError(f"{field}: unknown figure {name!r}; one of {', '.join(PUBLISHED_FIGURES)}")
                if getattr(self, name) is None:
                    raise ValueError(f"{field}: {name!r} names a figure the section does not give")
        both = sorted(set(self.fitted) & set(self.checked))
        if both:
            raise ValueError(f"a figure fitted is not a check: {', '.join(both)} in both 'fitted' and 'checked'")
        for name in (*self.fitted, *self.checked):
            if name not in self.bands:
                raise ValueError(f"bands: {name!r} is {'fitted' if name in self.fitted else 'checked'} "
                                 "and needs a band [low, high]")
        for name, (low, high) in self.bands.items():
            if not low <= high:
                raise ValueError(f"bands: {name!r} expected low <= high, got [{low}, {high}]")
        return self


class LiquidationSpec(Spec):
    """``[market.liquidation]``: the venue's liquidation mechanism and its books
    (``market/liquidation.py``, ``market/venue.py``; docs/model.md gives the formulas).

    ``mechanism`` names one of ``LIQUIDATION_MECHANISMS``: ``whole`` (the position closed
    whole at the on-chain price), ``partial`` (just enough closed to bring the equity back to
    ``restore_to``'s margin: ``maintenance`` or ``initial_margin``), ``close_factor`` (a call
    repays at most ``close_factor`` of the debt, repeated while the health factor is below 1),
    ``dutch_auction`` (Maker's clip, ``market/dutch.py``: an auction from the on-chain price x
    ``buffer``, decaying by ``decay``, taken by keepers once its price is at most the start's
    on-chain price x ``take_at``, reset past ``cusp`` or ``tail``), ``english_auction``
    (Maker's flip, ``market/flip.py``: keepers' bids raise the quote paid up to the debt with
    its penalty, then lower the units taken, each by at least ``beg``; a bid stands ``ttl``,
    the auction lasts at most ``tau``; longs only, a vault's collateral).
    The penalty (``market.liquidation_penalty``, the fee or bonus of every mechanism) goes
    ``keeper_share`` to the keeper and the rest to an insurance fund starting at
    ``insurance_fund``, which covers a bankrupt account's shortfall; what it cannot cover
    is, by ``on_empty``, left as bad debt (``none``), taken from profitable counterparties
    (``adl``) or shared among the profitable accounts (``socialise``)."""

    mechanism: str = "whole"
    restore_to: Literal["maintenance", "initial"] = "maintenance"
    initial_margin: Fraction = 0.1
    close_factor: Fraction = 0.5
    keeper_share: Fraction = 1.0
    insurance_fund: float = Field(default=0.0, ge=0)
    on_empty: Literal["none", "adl", "socialise"] = "none"
    # ``dutch_auction`` (Maker's clip): the auction's start, decay, reset and the keepers' take.
    buffer: float = Field(default=1.2, ge=1.0)
    decay: Literal["linear", "stair_step", "exponential"] = "exponential"
    tau: DurationNs = Field(default=60_000_000_000, gt=0)
    step: DurationNs = Field(default=1_000_000_000, gt=0)
    cut: float = Field(default=0.99, gt=0, lt=1)
    cusp: Fraction = 0.4
    tail: DurationNs = Field(default=600_000_000_000, gt=0)
    take_at: float = Field(default=1.0, gt=0)
    # ``english_auction`` (Maker's flip): a bid's duration and the least increment (``tau``,
    # above, is then the auction's maximum length).
    ttl: DurationNs = Field(default=600_000_000_000, gt=0)
    beg: Fraction = 0.03
    # ``english_auction``: Maker's ``lump`` per collateral (an instrument's name -> units): a
    # bite takes at most this many units of a vault's collateral into one auction, with its
    # share of the debt; none (unset, or an instrument not named): the whole vault in one.
    lump: dict[str, Annotated[float, Field(gt=0)]] | None = None
    published: PublishedSpec | None = None

    @field_validator("mechanism")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in LIQUIDATION_MECHANISMS:
            raise ValueError(f"unknown liquidation mechanism {name!r}; one of {LIQUIDATION_MECHANISMS.names()}")
        return name

    @field_validator("close_factor")
    @classmethod
    def _above_zero(cls, share: float) -> float:
        if share <= 0:
            raise ValueError("a call repays a share of the debt above 0")
        return share

    def keeps_today(self) -> bool:
        """Whole liquidations without a fund or a cover: the market as before this section."""
        return (LIQUIDATION_MECHANISMS[self.mechanism].closes_whole and self.keeper_share == 1.0
                and self.insurance_fund == 0.0 and self.on_empty == "none")


class FundingSpec(Spec):
    """``[market.funding]``: funding paid between longs and shorts every ``interval``
    (``market/funding.py``; ``rules/funding.py`` and docs/model.md give the formulas), on
    each instrument's open positions at its index (the on-chain oracle price). ``rate``:
    ``fixed`` pays ``fixed_rate`` of notional an interval (positive: the longs pay);
    ``premium`` adds the book's premium (the open-interest imbalance's price impact under
    the market's depth) to ``fixed_rate`` and bounds the sum to ``[-clamp, clamp]``."""

    interval: DurationNs = Field(default=1_000_000_000, gt=0)
    rate: Literal["fixed", "premium"] = "premium"
    fixed_rate: float = Field(default=0.0, ge=-1.0, le=1.0)
    clamp: Fraction = 0.0075


class MarkSpec(Spec):
    """``[market.mark]``: liquidations judged on a mark price, settled on the index
    (``market/mark.py``; ``rules/mark.py`` and docs/model.md give the formula): the index
    (the on-chain oracle price) moved by the book's premium (the open-interest imbalance's
    price impact under the market's depth), bounded to ``premium_cap`` either way. Without
    it, liquidations are judged on the index."""

    premium_cap: Fraction = 0.005


class LiquiditySpec(Spec):
    """``[market.liquidity]``: the book's depth as a curve, thinning under stress
    (``rules.market.impact_bps`` and ``thinned_depth``; docs/model.md, "Liquidity"). A close
    of notional x moves the price ``slippage_bps x (x / depth)^e``: e = 1 (``linear``, the
    market without this section), 0.5 (``sqrt``, the square-root impact law) or
    ``exponent`` (``power``). The depth falls with the realised volatility sigma of the
    on-chain price over the last ``window`` (per square root of a second): ``depth / (1 +
    sensitivity x sigma)``."""

    curve: Literal["linear", "sqrt", "power"] = "linear"
    exponent: float = Field(default=1.0, gt=0, le=3)
    window: DurationNs = Field(default=10_000_000_000, gt=0)
    sensitivity: float = Field(default=0.0, ge=0)

    def impact_exponent(self) -> float:
        """The curve's exponent e."""
        return {"linear": 1.0, "sqrt": 0.5}.get(self.curve, self.exponent)


class SentinelSpec(Spec):
    """``[market.sentinel]``: a rollup protocol's guard on its sequencer's uptime feed (as Aave
    v3's PriceOracleSentinel): no liquidation executes while the feed says the sequencer is down
    (a ``sequencer_outage``) or for ``grace`` after it is back, unless the account's health
    factor is below ``health_factor_bound``; one blocked executes in the first block when the
    grace ends, at the on-chain price then (``market/sentinel.py``). Without the table nothing is guarded."""

    grace: DurationNs = Field(default=3_600_000_000_000, ge=0, description="how long after the sequencer is back "
                              "liquidations stay paused")
    health_factor_bound: float | None = Field(default=None, gt=0, le=1, description="an account whose health "
                                              "factor (equity over its equity at the liquidation line) is below "
                                              "this is liquidated even then (Aave's sentinel: 0.95); none: no one")


class MarketSpec(Spec):
    """``[market]``: true prices, the oracle that publishes them, accounts with their margin,
    keepers that liquidate them; liquidations execute when their message commits."""

    resolution: Duration = Field(default=100_000_000, gt=0)
    instruments: list[InstrumentSpec] = Field(min_length=1)
    correlation: list[list[float]] | None = Field(
        default=None, description="the correlation of the instruments' price shocks, a matrix in the order of "
        "`instruments` (square, symmetric, unit diagonal, positive semi-definite); none: independent")
    oracle: OracleSpec = OracleSpec()
    accounts: list[AccountsSpec] = Field(default_factory=list)
    keepers: list[KeeperSpec] = Field(default_factory=list)
    topups: TopUpSpec | None = None
    frontrunners: list[FrontRunnerSpec] = Field(default_factory=list)
    orders: AuctionOrdersSpec | None = None
    probes: ProbeSpec | None = None
    liquidation: LiquidationSpec | None = None
    funding: FundingSpec | None = None
    mark: MarkSpec | None = None
    liquidity: LiquiditySpec | None = None
    sentinel: SentinelSpec | None = Field(default=None, description="a guard on the sequencer's uptime feed: "
                                          "liquidations paused while it is down and for a grace after: "
                                          "[`[market.sentinel]`](#marketsentinel)")
    maintenance_margin: Fraction = 0.05
    liquidation_penalty: Fraction = 0.05
    # Slippage of a liquidation: ``slippage_bps`` basis points for each ``depth`` of notional
    # it closes (a linear depth model).
    slippage_bps: float = Field(default=10.0, ge=0)
    depth: float = Field(default=1_000_000.0, gt=0)
    currency: str | None = Field(default=None, min_length=1, max_length=16)

    @model_serializer(mode="wrap")
    def _without_unset_frontrunners(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No front-runners, no auction orders, no probes (and the other tables and settings
        left unset) are not written: a market without them dumps (and hashes) as it did before
        they existed."""
        data: dict[str, Any] = handler(self)
        if not data.get("frontrunners"):
            data.pop("frontrunners", None)
        if data.get("orders") is None:
            data.pop("orders", None)
        if data.get("probes") is None:
            data.pop("probes", None)
        if data.get("liquidation") is None:
            data.pop("liquidation", None)
        elif data["liquidation"].get("lump") is None:  # no lot size: as before it existed
            data["liquidation"].pop("lump", None)
        for keeper in data.get("keepers") or []:
            if not keeper.get("nonce_order"):  # no nonce order: as before it existed
                keeper.pop("nonce_order", None)
        if data.get("funding") is None:
            data.pop("funding", None)
        if data.get("mark") is None:
            data.pop("mark", None)
        if data.get("liquidity") is None:
            data.pop("liquidity", None)
        if data.get("sentinel") is None:
            data.pop("sentinel", None)
        if data.get("correlation") is None:
            data.pop("correlation", None)
        if data.get("currency") is None:
            data.pop("currency", None)
        return data

    @field_validator("correlation")
    @classmethod
    def _correlation(cls, matrix: list[list[float]] | None, info: ValidationInfo) -> list[list[float]] | None:
        if matrix is None:
            return None
        instruments: list[InstrumentSpec] = info.data.get("instruments", [])
        if len(matrix) != len(instruments):
            raise ValueError(f"{len(matrix)} rows, but there are {len(instruments)} instruments: one row and one "
                             f"column per instrument, in their order")
        problem = correlation_problem(matrix)
        if problem is not None:
            raise ValueError(problem)
        for i, instrument in enumerate(instruments):
            if instrument.replay is not None and any(matrix[i][j] != 0.0 for j in range(len(matrix)) if j != i):
                raise ValueError(f"instrument {instrument.name!r} is replayed from a file: its price has no "
                                 f"drawn shock to correlate; set row and column {i} to 0 off the diagonal")
        return matrix

    @model_validator(mode="after")
    def _check(self) -> MarketSpec:  # noqa: C901 - one check a field
        names = [instrument.name for instrument in self.instruments]
        if len(set(names)) != len(names):
            raise ValueError(f"instrument names must differ, got {names}")
        for index, group in enumerate(self.accounts):
            if group.instrument is not None and group.instrument not in names:
                raise ValueError(f"accounts[{index}].instrument: unknown instrument {group.instrument!r}; "
                                 f"one of {names}")
        agents = [self.oracle.name, *(keeper.name for keeper in self.keepers),
                  *([self.topups.name] if self.topups is not None else []),
                  *(runner.name for runner in self.frontrunners)]
        if len(set(agents)) != len(agents):
            raise ValueError(f"the oracle's and keepers' names must differ, got {agents}")
        if self.probes is not None and self.funding is not None:
            raise ValueError("probes: the probe books pay no funding; they cannot answer for [market.funding] "
                             "(drop [market.probes] or [market.funding])")
        if self.probes is not None and self.liquidity is not None and self.liquidity.sensitivity > 0:
            raise ValueError("probes: the probe books trade on the calm book; they cannot answer for "
                             "liquidity.sensitivity above 0 (drop [market.probes] or set it to 0)")
        if self.probes is not None and self.mark is not None:
            raise ValueError("probes: the probe books judge on the index; they cannot answer for [market.mark] "
                             "(drop [market.probes] or [market.mark])")
        if self.sentinel is not None and (self.liquidation is not None or self.mark is not None
                                          or self.probes is not None):
            raise ValueError("sentinel: the uptime guard holds whole liquidations at the index; it cannot "
                             "be combined with [market.liquidation], [market.mark] or [market.probes] yet")
        rule = self.liquidation
        if rule is not None:
            if rule.restore_to == "initial" and rule.initial_margin <= self.maintenance_margin:
                raise ValueError(f"liquidation.initial_margin: {rule.initial_margin:g} must be above "
                                 f"maintenance_margin {self.maintenance_margin:g} (a partial liquidation "
                                 f"restores the initial margin)")
            if LIQUIDATION_MECHANISMS[rule.mechanism].english:
                for index, group in enumerate(self.accounts):
                    if group.file is None and group.long_share < 1.0:
                        raise ValueError(f"accounts[{index}].long_share: {group.long_share:g}, but an english_auction "
                                         "sells a long's collateral (a vault); set long_share = 1")
                names = [instrument.name for instrument in self.instruments]
                for name in rule.lump or {}:
                    if name not in names:
                        raise ValueError(f"liquidation.lump: {name!r} is not an instrument; "
                                         f"one of {', '.join(names)}")
                if self.funding is not None:
                    raise ValueError("funding: an english_auction market holds longs only (vaults), so funding "
                                     "between longs and shorts has no one to pay or receive it (drop "
                                     "[market.funding] or choose another liquidation.mechanism)")
            if rule.lump and not LIQUIDATION_MECHANISMS[rule.mechanism].english:
                raise ValueError(f"liquidation.lump: Maker's flip lot size; mechanism "
                                 f"{rule.mechanism!r} has no lots (set mechanism = "
                                 "\"english_auction\" or drop lump)")
            if rule.lump and rule.on_empty != "none":
                raise ValueError("liquidation.lump: a lot's shortfall is covered by the fund, "
                                 f"the rest bad debt; on_empty = {rule.on_empty!r} is not modelled "
                                 "for lots (set on_empty = \"none\")")
            if self.probes is not None and not LIQUIDATION_MECHANISMS[rule.mechanism].alone:
                raise ValueError(f"probes: the probe books cannot answer for liquidation.mechanism "
                                 f"{rule.mechanism!r} (its auctions are taken by keepers every "
                                 "account shares; drop [market.probes])")
        return self
