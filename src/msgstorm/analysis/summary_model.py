"""The summary's sections as types: ``Summary`` has one field per section of summary.json.

Place in the pipeline: the typed results of ``analysis.sections``. ``analyse`` computes each
registered section, validates the whole against ``Summary`` (a section whose result does not
fit its type fails there, naming the key) and writes summary.json from the model
(``Analysis.result``); reports read its typed fields. ``summary_json_schema()`` gives the
JSON Schema (2020-12) that ``report/summary.schema.json`` ships (``msgstorm schema`` prints
it; a test checks the shipped file equals the generated one). The network and chain
sections' types are in ``analysis.summary_chain``, the shared base and number types in
``analysis.summary_fields``. Fields are in the registry's order (summary.json's order), and a
nested model's fields in the order its compute function writes them, so that dumping a
validated section gives back the same JSON. Regenerate the schema file after changing a type:
``python -m msgstorm.report.schema > src/msgstorm/report/summary.schema.json``.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from msgstorm.analysis.recovery import PRE_FAULT_P99_MEANING, NoBaselineReasonName
from msgstorm.analysis.summary_chain import (
    Collateral,
    Consensus,
    Crosschain,
    CrossResult,
    Finality,
    Forks,
    HopSplit,
    Outage,
    RegionPropagation,
    Relay,
    Rollup,
    SentinelResult,
    Validators,
)
from msgstorm.analysis.summary_fields import Closed, Count, Ms, Rate, Seconds

__all__ = ["Summary", "summary_json_schema"]


class P50P99(Closed):
    p50: Ms
    p99: Ms


class Latency(Closed):
    p50: Ms
    p90: Ms
    p99: Ms
    p999: Ms
    max: Ms
    mean: Ms


class Stages(Closed):
    propagation: P50P99
    queue_wait: P50P99
    service: P50P99
    block_wait: P50P99


class Jitter(Closed):
    stddev: Ms
    p99_minus_p50: Ms
    ipdv_mean: Ms
    ipdv_p99: Ms


class AtLimit(Closed):
    step: Annotated[int, Field(ge=1, description="the ramp step judged: the first failing one (the last when all passed)")]
    offered_per_s: Rate
    send_lag_p50_ms: Annotated[float | None, Field(description="the generator's median send lag in that step")]
    cpu_busy: Annotated[dict[str, float], Field(description="CPUs each sampled process kept busy in that step "
                                                            "(publisher: msgstorm's own; servers by name)")]
    machine_cpus: Annotated[int | None, Field(ge=1, description="CPUs of the machine the run ran on")]
    machine_busy: Annotated[float | None, Field(ge=0, description=(
        "CPUs of the machine busy in that step, whoever used them (/proc/stat); null where the run did not "
        "record them"))] = None


class Capacity(Closed):
    knee_rate_per_s: Rate
    knee_reached: Annotated[bool, Field(
        description="false when every step of the ramp passed: no knee was reached, and knee_rate_per_s is the "
                    "highest rate offered, a lower bound on the knee (written only then)")] = True
    method: str
    limited_by: Annotated[Literal["broker", "generator", "machine CPU", "machine"] | None, Field(
        description="live: what limited the ramp at its first failing step: the generator behind its schedule, "
                    "the machine's CPUs all busy with the run's processes (machine CPU) or with other work "
                    "(machine), or else the broker; null on the simulator")] = None
    at_limit: Annotated[AtLimit | None, Field(description="live: the facts limited_by was judged on")] = None


class ActiveFault(Closed):
    fault_id: int | None
    kind: str | None


class FailureThreshold(Closed):
    rate_per_s: Rate
    reason: Annotated[Literal["loss", "desync", "round", "height_lag", "generator", "overload", "fault", "latency",
                              "slo"], Field(
        description="what fired first: loss; desync; round (a height committed in a round above 0); height_lag "
                    "(a node more than desync.max_height_gap heights behind); generator (live: msgstorm's generator behind, not the broker); "
                    "overload (throughput short of offered; on the simulator while the queue grows); fault (the "
                    "same while a fault was active: the fault's doing, not the load's); latency "
                    "(live: p99 over knee_latency_factor x the low-load p99); slo")]
    t_ns: Annotated[int, Field(ge=0, description="the start of the interval (ramp step or window) it fired in")]
    faults: Annotated[list[ActiveFault], Field(
        description="the faults active in that interval (written only when there are some)")] = []


class Queue(Closed):
    max_depth: Annotated[int | float | None, Field(ge=0, description=(
        "the most messages waiting at once in the queue-wait stage: received (sequencer intake, mempool) and "
        "not yet in service or in a block, whatever held them (queue, fee waiting list, lane, mempool); a "
        "message still pending at the end waits to it; null when no message has that stage (a live broker)"))]
    mean_depth: Annotated[float | None, Field(ge=0, description=(
        "those messages' mean number over the run's time, from 0 to its end: the sum of their waits over "
        "that span (exact, not sampled)"))]
    max_block_backlog: Annotated[int | float | None, Field(ge=0)] = None


class Backpressure(Closed):
    events: Count
    first_engaged_s: Seconds


class BaseFee(Closed):
    min: float | None
    max: float | None
    last: float | None
    unit: Annotated[str | None, Field(description="what the base fee is counted in: gwei, or on an EVM node "
                                                  "live.anvil.fee_unit_wei wei; null in a summary written before "
                                                  "it was")] = None


UNSENT = "live: intended before the run's end but never sent, the generator being behind when the run ended (its shortfall; nothing is sent late); 0 on the simulator"


class Messages(Closed):
    sent: Annotated[int, Field(ge=0, description="messages sent: every row but the unsent ones")]
    sequenced: Count
    committed: Count
    dropped: Count
    rejected: Count
    lost: Count
    pending: Count
    unsent: Annotated[int, Field(ge=0, description=UNSENT)]


class Group(Closed):
    """One message kind's or agent's messages: sent, final statuses, committed latency."""

    sent: Count
    committed: Count
    dropped: Count
    rejected: Count
    lost: Count
    pending: Count
    unsent: Annotated[int, Field(ge=0, description=UNSENT)]
    latency_ms: P50P99


class GossipBacklog(Closed):
    max: Annotated[float, Field(ge=0, description="receipts' worth of queued validation work")]
    node: str | None
    mean: Annotated[float, Field(ge=0)]
    samples: Count


class SendLag(Closed):
    p50: Ms
    p99: Ms
    max: Ms


class Generator(Closed):
    saturated: Annotated[bool, Field(description="p99 send lag over 1 ms: the schedule was not kept")]
    send_lag_ms: SendLag
    processes: Annotated[int | None, Field(ge=1, description="processes the generator and its consumers ran in "
                                                             "(null: the history does not say)")] = None
    unsent: Annotated[int, Field(ge=0, description="the shortfall: messages intended before the run's end "
                                                   "that the generator, behind, never sent (it stops at the end)")] = 0


class ConsumerLost(Closed):
    total: Count
    prefix: Annotated[int, Field(ge=0, description="before the first receipt in send order")]
    middle: Annotated[int, Field(ge=0, description="between receipts: a gap")]
    postfix: Annotated[int, Field(ge=0, description="after the last receipt")]
    acked: Annotated[int, Field(ge=0, description="of the lost, those the broker had acked")]
    stored: Annotated[int | None, Field(
        ge=0, description="of the lost, messages the stream read back holds (in the stream or any node's copy): "
                          "stored by the broker and never delivered; null when nothing was read back")] = None
    not_stored: Annotated[int | None, Field(
        ge=0, description="of the lost, messages in no copy of the stream read back: never stored; null when "
                          "nothing was read back")] = None


class Lost(ConsumerLost):
    by_consumer: Annotated[dict[str, ConsumerLost] | None, Field(
        description="the same counts per consumer (fan-out: each consumer gets every message); null when the "
                    "consumers share the messages")] = None


class StreamReadBack(Closed):
    stored: Count
    acked_missing: Annotated[int, Field(ge=0, description="acked, yet not in the stream read back")]
    duplicated: Count
    unexpected: Count


class ReadBack(Closed):
    done: Annotated[bool, Field(description="the whole stream was read back")]
    stored: Annotated[int | None, Field(ge=0, description="messages read back (null when not done)")]
    seconds: Annotated[float | None, Field(ge=0, description="how long the read-back took, after the run's end")]
    error: Annotated[str | None, Field(description="why the read-back could not be done")]
    timeout_s: Annotated[float | None, Field(
        ge=0, description="its own bound (live.read_back_timeout), after run.duration + run.drain: the longest "
                          "it waits for a connection or for each next batch; null when the history does not say")] = None


class Delivery(Closed):
    fanout: Annotated[bool, Field(description="every consumer gets every message (else they share)")]
    consumers: Count
    expected: Annotated[int, Field(ge=0, description="receipts a correct run has")]
    received: Count
    lost: Lost
    duplicated: Count
    unexpected: Annotated[int, Field(ge=0, description="receipts of messages never sent")]
    reordered: Annotated[int, Field(ge=0, description="receipts after a later-sent message of the same key")]
    stream: StreamReadBack | None
    read_back: Annotated[ReadBack | None, Field(
        description="the phase after the run that read the broker's stream back (off the run's time axis); "
                    "null for a driver that reads nothing back")] = None
    nodes: Annotated[dict[str, StreamReadBack | None] | None, Field(
        description="per-node divergence: each server's own copy of the stream, read back node by node, against "
                    "what was acked; null when no node was read on its own")] = None


class ClientDown(Closed):
    disconnects: Count
    down_s: Annotated[float, Field(ge=0, description="from each disconnect to its reconnection (or the run's end)")]
    reconnect_attempts: Annotated[int, Field(ge=0, description="failed attempts to connect again, over all its outages")]


class ServerExited(Closed):
    name: str | None
    returncode: int | None


class Incident(Closed):
    t_s: Annotated[float, Field(description="run time of the event")]
    kind: Literal["disconnected", "client_error", "server_stop"]
    client: Annotated[str | None, Field(description="the client, or the server that stopped")]
    error: Annotated[str | None, Field(description="what the client or server said")]


class Cleanup(Closed):
    verified: Annotated[bool, Field(description="nothing msgstorm started still ran or listened after the run")]
    servers_stopped: Count
    proxies_closed: Annotated[int, Field(ge=0, description="fault proxies closed")]
    resumed: Annotated[list[str], Field(description="paused servers resumed ahead of their time (heal, stop)")]
    left: Annotated[list[str], Field(description="what still ran or listened (empty when verified)")]


class Connections(Closed):
    disconnects: Count
    reconnects: Count
    errors: Annotated[int, Field(ge=0, description=(
        "client_error events: refused or dropped publishes, clients that failed; not reconnect attempts, "
        "which count into their outage"))]
    clients: Annotated[dict[str, ClientDown], Field(description="every client that lost its connection")]
    servers_exited: Annotated[list[ServerExited], Field(
        description="servers msgstorm started that had exited on their own before it stopped them")]
    incidents: Annotated[list[Incident], Field(description="the first 20 disconnects, errors and early exits")]
    cleanup: Annotated[Cleanup | None, Field(
        description="the run's end, verified: servers stopped, proxies closed, paused servers resumed, and "
                    "anything left; null for a run recorded before this was kept")] = None


class Desync(Closed):
    episodes: Count
    max_height_gap: Count


class NoBaselineReason(Closed):
    reason: Annotated[NoBaselineReasonName, Field(
        description="fault_in_force: another fault was in force as this one began; fault_before: the fault "
                    "before (fault_id) ended too close to leave a clean step; shed_before: messages were dropped "
                    "(the layer shedding load) in every step before; nothing_before: nothing committed before, or "
                    "a p99 of 0")]
    fault_id: Annotated[int | None, Field(description="the other fault, for fault_in_force and fault_before")] = None


class Fault(Closed):
    fault_id: int | None
    kind: str | None
    start_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[Seconds, Field(description="null while still active at the end")]
    pre_fault_p99_ms: Annotated[Ms, Field(description=PRE_FAULT_P99_MEANING)] = None
    baseline_s: Annotated[list[Annotated[float, Field(ge=0)]] | None, Field(
        min_length=2, max_length=2,
        description="[from, to): the span the pre-fault p99 was measured over; null without a baseline")] = None
    no_baseline: Annotated[NoBaselineReason | None, Field(
        description="why there was no baseline to measure recovery against; null when there was one")] = None
    recovery_s: Annotated[Seconds, Field(
        description="fault end -> the first 100 ms bin with throughput >= 90% of offered and p99 <= 2x the "
                    "pre-fault p99; null when the fault did not end or the run ended first (not recovered), or "
                    "had no baseline (no_baseline says why)")] = None


class Check(Closed):
    name: str
    verdict: Literal["valid", "invalid", "unknown"]
    detail: str


class SloVerdict(Closed):
    name: str
    verdict: Literal["pass", "fail", "unknown"]
    value: int | float | None
    threshold: str
    bound: Annotated[Literal["lower"] | None, Field(
        description="lower: the value is only a lower bound on the metric (the knee of a ramp that passed every "
                    "step); the verdict is pass or fail only where the bound decides it, else unknown "
                    "(written only then)")] = None
    reason: Annotated[str | None, Field(description="why the verdict was reached on a bound, or left unknown "
                                                    "(written only then)")] = None


class Liquidations(Closed):
    eligible: Annotated[int, Field(ge=0, description="accounts the true price took past their maintenance line "
                                                     "within the horizon (run.duration, the oracle's span)")]
    triggered: Annotated[int, Field(ge=0, description="of the eligible, those a keeper sent a liquidation for")]
    executed: Count
    late: Annotated[int, Field(ge=0, description="executed after the true price first crossed the bankruptcy price "
                                                 "(not the same as ending in bad debt: the penalty comes first)")]
    no_op: Annotated[int, Field(ge=0, description="liquidations committed that did nothing (recovered, or done)")]
    not_attempted: Annotated[int, Field(ge=0, description="eligible, never triggered")]
    messages: Annotated[int, Field(ge=0, description="liquidation messages the keepers sent")]


class DelaySplit(Closed):
    oracle: Ms
    keeper: Ms
    messaging: Ms


class LiquidationDelay(Closed):
    p50: Ms
    p99: Ms
    max: Ms
    mean: Ms
    split: Annotated[DelaySplit | None, Field(
        description="the mean divided on the attempt that executed, each delay exactly: crossing -> the oracle's "
                    "first price after it; price seen -> keeper sent; the rest (that price's way to the keeper, "
                    "any earlier attempt that came to nothing, the liquidation's way to commit)")]


class BadDebt(Closed):
    absolute: Annotated[float | None, Field(ge=0)]
    pct_of_open_interest: Annotated[float | None, Field(ge=0)]
    accounts: Count


class Staleness(Closed):
    p50: Ms
    p99: Ms
    max: Ms


class Slippage(Closed):
    p50: float | None
    p99: float | None


class ProbePoint(Closed):
    leverage: Annotated[float, Field(gt=0)]
    bad_debt: Annotated[float | None, Field(ge=0, description="the probe book's: its executed probes' shortfall, "
                                                              "the rest marked to market at the horizon")]
    pct_of_open_interest: Annotated[float | None, Field(ge=0, description="of the book's open interest (leverage x "
                                                                         "the accounts' collateral)")]
    accounts: Count
    executed: Annotated[int, Field(ge=0, description="probes of the book liquidated")]


class InsuranceFund(Closed):
    start: float
    end: float
    used: Annotated[float, Field(ge=0)]


class PublishedFigures(Closed):
    zero_bid_share: float | None
    zero_bid_units: float | None
    zero_bid_value: float | None = None
    zero_bid_lots: float | None = None
    top_zero_bidder_share: float | None = None
    returned_share: float | None
    returned_share_won: float | None = None
    deficit: float | None
    source: str
    sources: dict[str, str] = {}
    bands: dict[str, tuple[float, float]] = {}
    fitted: list[str] = []
    checked: list[str] = []


class EnglishLots(Closed):
    unit: Annotated[str | None, Field(description="what the lots' units are: the instrument's name (market.instruments), "
                                                  "null with several instruments")] = None
    lots: Annotated[int, Field(ge=0, description="auctions closed")]
    zero_bid_lots: Annotated[int, Field(ge=0, description="closed at a bid of 0")]
    zero_bid_units: Annotated[float, Field(ge=0, description="the units of collateral those lots held")]
    zero_bid_value: Annotated[float | None, Field(ge=0, description="their value at the on-chain price at each "
                                                                    "close")] = None
    top_zero_bidder_share: Annotated[float | None, Field(ge=0, le=1, description=(
        "of the units won at a bid of 0, the share the keeper that won most of them took "
        "(null: none)"))] = None
    units: Annotated[float, Field(ge=0, description="the units of collateral every closed lot held")]
    returned_share: Annotated[float, Field(ge=0, le=1, description="of the auctioned collateral's value at each "
                                                                   "close, the share given back to its owners")]
    returned_share_won: Annotated[float | None, Field(ge=0, le=1, description="the same over the lots won at a bid "
                                                                              "above zero (null: none)")] = None
    published: Annotated[PublishedFigures | None, Field(description="the figures published for the day the run "
                                                                    "replays ([market.liquidation.published])")] = None


class FundingPaid(Closed):
    payments: Annotated[Count, Field(description="one position's funding in one interval, each a venue row")]
    intervals: Annotated[Count, Field(description="the intervals in which funding was paid")]
    paid: Annotated[float, Field(ge=0, description="what the paying positions paid")]
    received: Annotated[float, Field(ge=0, description="what the receiving positions received (equal to paid)")]


class VenueLosses(Closed):
    liquidation_fee: Annotated[float, Field(description="the penalties of every liquidation call, whole or partial")]
    keeper_fee: float
    insurance_fee: float
    insurance_fund: InsuranceFund
    deleveraged: Annotated[float, Field(ge=0, description="shortfall taken from profitable counterparties (adl)")]
    socialised: Annotated[float, Field(ge=0, description="shortfall shared among the profitable accounts")]
    bad_debt: Annotated[float, Field(ge=0, description="the executed accounts' shortfall no one covered")]
    partial_calls: Count
    auctions: Annotated[EnglishLots | None, Field(description="an english_auction venue's lots")] = None
    funding: Annotated[FundingPaid | None, Field(
        description="with [market.funding]: funding paid between longs and shorts (market/funding.py)")] = None


class Market(Closed):
    currency: Annotated[str | None, Field(description="what its amounts are counted in (market.currency); null: "
                                                      "not named")] = None
    accounts: Count
    open_interest: Annotated[float | None, Field(ge=0, description="every position's notional at entry")]
    liquidations: Liquidations
    liquidation_delay_ms: Annotated[LiquidationDelay, Field(
        description="per executed account: the crossing it answered (the start of the true price's spell past "
                    "the line holding the price its keeper acted on) -> execution committed")]
    bad_debt: Annotated[BadDebt, Field(
        description="what executed accounts could not pay, plus the accounts never liquidated marked to market at "
                    "the true price at the horizon")]
    price_staleness_ms: Annotated[Staleness, Field(
        description="at each price step within the horizon: now minus the time of the true price behind the "
                    "on-chain price")]
    slippage_bps: Slippage
    probes: Annotated[list[ProbePoint] | None, Field(
        description="with [market.probes]: bad debt of every account again at each leverage of the grid, riding "
                    "along the run (market/probes.py)")] = None
    venue: Annotated[VenueLosses | None, Field(
        description="with [market.liquidation]: what the venue's rules did with the money (market/venue.py)")] = None


class Fairness(Closed):
    policy: Annotated[str, Field(description="sequencer.policy of the run")]
    gamma: Annotated[float, Field(description="the share of nodes whose receive order makes an inversion "
                                              "(sequencer.fair_order.gamma; 1: every node)")]
    messages_compared: Annotated[Count, Field(description="committed messages with a receive time at every node")]
    pairs: Annotated[Count, Field(description="pairs of them compared: at most 1,000 sequence numbers apart")]
    inversions: Annotated[Count, Field(description="pairs (a, b): a gamma share of the nodes received a before b, "
                                                   "b was sequenced first")]
    inversion_rate: Annotated[float | None, Field(ge=0, le=1, description="inversions / pairs")]
    front_run_attempts: Annotated[Count, Field(description="races front-runners started (frontruns rows)")]
    front_run_successes: Annotated[Count, Field(description="races whose order took effect before the victim's")]
    extracted_value: Annotated[float, Field(ge=0, description="what the won races earned: each one's notional x "
                                                               "the victim's price impact")]


class AuctionDeviation(Closed):
    mean: Annotated[float | None, Field(description="mean of (clearing price - true price) / true price, in bps")]
    mean_abs: Annotated[float | None, Field(ge=0, description="mean of its absolute value, in bps")]
    rms: Annotated[float | None, Field(ge=0, description="its root mean square, in bps")]


class Auction(Closed):
    batches: Annotated[Count, Field(description="batches in which at least one order took effect")]
    batches_cleared: Annotated[Count, Field(description="batches in which orders crossed (a clearing price)")]
    orders: Annotated[Count, Field(description="limit orders drawn for the order flow (auction_orders rows)")]
    orders_in_batches: Annotated[Count, Field(description="orders that took effect in a batch")]
    quantity: Annotated[float | None, Field(ge=0, description="their total quantity")]
    cleared_volume: Annotated[float | None, Field(ge=0, description="what the batches traded (one side)")]
    fill_rate: Annotated[float | None, Field(ge=0, le=1, description="filled share of the quantity that took "
                                                                     "effect (both sides)")]
    mean_clearing_price: Annotated[float | None, Field(description="mean uniform price of the batches that cleared")]
    last_clearing_price: Annotated[float | None, Field(description="the last batch's uniform price")]
    price_deviation_bps: Annotated[AuctionDeviation, Field(
        description="each clearing price against the true price at its batch's close")]


class Controller(Closed):
    decisions: Annotated[int, Field(ge=1, description="control events: each a change of its output")]
    output: Annotated[str, Field(description="what its values are: admitted_share (throttle: the share of its "
                                             "non-essential kinds' arrivals admitted) or block_interval_ms")]
    lowest: float
    highest: float
    last: Annotated[float, Field(description="its output after its last decision")]
    shed: Annotated[int | None, Field(ge=0, description="arrivals it had shed (dropped) by its last decision; "
                                                        "null for a controller that sheds nothing")]
    sheds: Annotated[list[str], Field(description="the kinds it may shed")]


class Security(Closed):
    scheme: Annotated[str | None, Field(description="none, hmac-sha256 or ed25519 ([security] scheme)")]
    verify: Annotated[str | None, Field(description="model, or real: every message signed and verified by the library")]
    chain_id: Annotated[int | None, Field(description="the chain id in what is signed")]
    verify_cost_us: Annotated[float | None, Field(ge=0, description="CPU time a receiving node spent verifying "
                                                                    "one message, added to its processing time; "
                                                                    "null under scheme none (nothing is verified)")]
    sign_cost_us: Annotated[float | None, Field(ge=0, description="signing one message, from the calibration; "
                                                                  "null when the scenario gave the cost, and under "
                                                                  "scheme none")]
    source: Annotated[str | None, Field(description="where the cost came from: scenario, or the calibration "
                                                    "file `msgstorm calibrate crypto` wrote; null under scheme none")]


class Integrity(Closed):
    scheme: Annotated[str, Field(description="the authentication scheme the receivers verified with")]
    tampered: Annotated[Count, Field(description="messages that arrived altered by an adversary")]
    replayed: Annotated[Count, Field(description="copies of earlier messages an adversary sent again")]
    replayed_other_chain: Annotated[Count, Field(description="of those, copies signed on another chain")]
    detected: Annotated[Count, Field(description="tampered or replayed messages rejected by verification")]
    accepted: Annotated[Count, Field(description="tampered or replayed messages accepted (what got through)")]
    censored: Annotated[Count, Field(description="messages a censoring producer (censor fault) kept out of its "
                                                 "queue for its window or dropped")]


class ByzantineFault(Closed):
    fault_id: int | None
    kind: Annotated[str | None, Field(description="censor_nodes, delay_nodes, reorder_nodes, flood_invalid, "
                                                  "equivocate_votes, withhold_votes, twins, or eclipse (its attackers)")]
    nodes: Annotated[list[str], Field(description="the nodes it made byzantine (named, or drawn with the seed)")]


class Censorship(Closed):
    agent: Annotated[str, Field(description="a victim: an agent whose messages a censor_nodes fault censors")]
    kinds: Annotated[list[str], Field(description="the censored kinds it sent")]
    messages: Annotated[Count, Field(description="its messages of those kinds sent while a censoring fault was on")]
    censored: Annotated[Count, Field(description="of those, the ones a censoring producer held and left out of "
                                                 "a block it made")]
    rate: Annotated[float, Field(description="censored / messages")]


class Byzantine(Closed):
    faults: Annotated[list[ByzantineFault], Field(description="each fault of byzantine nodes, in start order")]
    eclipsed: Annotated[list[str], Field(description="nodes an eclipse fault cut off, slowed or surrounded (honest "
                                                      "nodes)")]
    invalid_sent: Annotated[Count, Field(description="invalid messages flooding nodes (flood_invalid) sent")]
    invalid_validated: Annotated[Count, Field(description="of their copies, those receivers validated (each a "
                                                          "validation's CPU time) and dropped")]
    censorship: Annotated[list[Censorship], Field(description="each victim of a censor_nodes fault (by agent): "
                                                              "the share of its censored messages left out of "
                                                              "a censoring producer's block")]


class Summary(BaseModel):
    """The headline results of one msgstorm run, as written to RUN_DIR/summary.json by
    `msgstorm run` and `msgstorm report` (see msgstorm.analysis.summary). Times in ms are
    rounded to 3 decimals; null where a metric is not defined. New top-level keys may be
    added by later versions; the keys below keep their meaning."""

    model_config = ConfigDict(extra="allow", title="msgstorm summary.json")

    scenario: Annotated[str | None, Field(description="run.name of the scenario")]
    seed: int | None
    target: Annotated[str | None, Field(description="sim, or a live driver's name")]
    msgstorm_version: str | None
    scenario_hash: Annotated[str | None, Field(description="hash of the validated scenario")]
    duration_s: Annotated[Seconds, Field(description="the run's t_end: the last time the target observed")]
    interrupted: Annotated[bool, Field(description="the run was stopped before its end (Ctrl-C, SIGTERM, "
                                                   "or cut off)")]
    cut_off: Annotated[bool, Field(description="the run was killed before it could write its end; the "
                                               "history holds what was flushed before")]
    offered_rate_per_s: Annotated[Rate, Field(description="messages the schedule produced / run.duration")]
    throughput_per_s: Annotated[Rate, Field(
        description="committed messages / the span from the first intended send to the later of the "
                    "traffic window's end (run.duration) and the last commit")]
    latency_ms: Annotated[Latency, Field(
        description="t_committed - t_intended of committed messages; exact nearest-rank percentiles")]
    latency_stages_ms: Annotated[Stages, Field(
        description="propagation = t_received - t_intended, queue_wait = t_dequeued - t_received, "
                    "service = t_sequenced - t_dequeued, block_wait = t_committed - t_sequenced")]
    jitter_ms: Annotated[Jitter, Field(
        description="stddev and p99-p50 of latency; mean and p99 of |IPDV| (RFC 3393) per agent stream")]
    capacity: Annotated[Capacity | None, Field(description="the knee of a step ramp; null without a ramp")]
    failure_threshold: Annotated[FailureThreshold | None, Field(
        description="the first interval (ramp step or window) where a failure criterion fired; "
                    "null when none did")]
    queue: Queue
    backpressure: Backpressure
    base_fee: Annotated[BaseFee | None, Field(description="null when no base fee was recorded")]
    messages: Annotated[Messages, Field(
        description="sent counts every message the schedule produced; sequenced those with "
                    "t_sequenced; the rest count final statuses")]
    by_kind: Annotated[dict[str, Group], Field(description="per message kind")]
    by_agent: Annotated[dict[str, Group], Field(description="per agent")]
    gossip_backlog: Annotated[GossipBacklog | None, Field(
        description="the gossip nodes' sampled validation backlog: the largest, where, and the mean "
                    "over sampled nodes that had one; null without samples")]
    generator: Annotated[Generator | None, Field(
        description="a live target's load generator: send lag (t_sent - t_intended); null on the simulator")]
    delivery: Annotated[Delivery | None, Field(
        description="a live run's receipts audited against what was sent; null on the simulator")]
    connections: Annotated[Connections | None, Field(
        description="a live run's connection trouble: clients cut off, their errors, servers that went away; "
                    "null on the simulator and for a live run cut off before it wrote its events")] = None
    market: Annotated[Market | None, Field(
        description="what delay cost: liquidations, their delay, bad debt, price staleness; null without [market]")] = None
    desync: Desync
    propagation_ms: Annotated[dict[str, RegionPropagation], Field(
        description="gossip propagation (t_delivered - t_sent) by receiving region")]
    faults: list[Fault]
    checks: Annotated[list[Check], Field(description="delivery checker verdicts")]
    fairness: Annotated[Fairness | None, Field(
        description="receive-order inversions and front-running; absent without front-runners "
                    "([[market.frontrunners]]) and with a plain policy (fifo, fee_priority)")] = None
    auction: Annotated[Auction | None, Field(
        description="the batch auction's clearings; absent without [market.orders] and "
                    "sequencer.policy = \"batch_auction\"")] = None
    forks: Annotated[Forks | None, Field(
        description="stale blocks, forks, reorgs and block reach; absent without [blocks.producers]")] = None
    relay: Annotated[Relay | None, Field(
        description="what the nodes sent to relay items (sim): payloads, announcements, requests, compact blocks' "
                    "round trips, bytes uploaded per region; absent on live targets and when [network.relay] "
                    "pushes everything")] = None
    hop_split: Annotated[dict[Literal["block", "message"], HopSplit] | None, Field(
        description="where relayed items' time goes, hop by hop: announcement, request, transfer, validation, "
                    "for blocks and sampled messages (sim); absent when relay is")] = None
    finality: Annotated[Finality | None, Field(
        description="finality by votes against the quorum bound; absent without blocks.producers.finality = "
                    "\"votes\"")] = None
    consensus: Annotated[Consensus | None, Field(
        description="round-based BFT consensus: rounds, block interval, height lag, safety, liveness, failure "
                    "conditions, per node; absent without a heights table (blocks.producers.consensus)")] = None
    validators: Annotated[Validators | None, Field(
        description="a validator network's consensus per validator (heights, proposals, rounds above 0, commit "
                    "interval, mempool, height lag) and per height, and its longest halt; absent unless the "
                    "commits are per validator with their rounds (target cometbft)")] = None
    crosschain: Annotated[Crosschain | None, Field(
        description="a second chain and its relayers: fates, latency from source intent to destination commit "
                    "and its split, the source's halt; absent without [crosschain]")] = None
    rollup: Annotated[Rollup | None, Field(
        description="a rollup: latency to soft, safe and final commit and its split, its batches and what L1 "
                    "charged them; absent without [rollup]")] = None
    outages: Annotated[list[Outage] | None, Field(
        description="sequencer outages (sequencer_outage faults): when, how long, the backlog when the sequencer "
                    "returned and how long it took to drain; absent without one")] = None
    sentinel: Annotated[SentinelResult | None, Field(
        description="the sequencer uptime guard ([market.sentinel]): liquidations it paused, executed after the "
                    "pause, let through below the bound, and bad debt; absent without it")] = None
    cross: Annotated[CrossResult | None, Field(
        description="cross-margin accounts ([[market.accounts]] margin = \"cross\"): how many the true prices took "
                    "below their requirement, the calls that closed them (whole or partly), and bad debt; absent "
                    "without them")] = None
    collateral: Annotated[Collateral | None, Field(
        description="positions on the destination, collateral on the source: liquidations closed after the "
                    "relay or left open, and their bad debt against one chain; absent without [crosschain] "
                    "positions = \"destination\"")] = None
    control: Annotated[dict[str, Controller] | None, Field(
        description="what each self-healing controller ([[controllers]]) decided and shed; absent without "
                    "decisions")] = None
    security: Annotated[Security | None, Field(
        description="the authentication scheme and the verification cost per message the run used; absent "
                    "without [security]")] = None
    integrity: Annotated[Integrity | None, Field(
        description="tampered and replayed messages and what verification did with them (exact counts); "
                    "absent without [security] or a tamper/replay adversary")] = None
    byzantine: Annotated[Byzantine | None, Field(
        description="the faults of byzantine nodes, their nodes, eclipsed nodes, and what flooding cost the "
                    "receivers; absent without such a fault or an eclipse")] = None
    slo: Annotated[list[SloVerdict], Field(description="one entry per [slo] line of the scenario, in order")]
    wall_s: Annotated[float | None, Field(ge=0, description="wall-clock seconds the run took (absent when "
                                                           "unknown)")] = None


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of summary.json, generated from ``Summary``."""
    schema = Summary.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:msgstorm:summary:2", **schema}
