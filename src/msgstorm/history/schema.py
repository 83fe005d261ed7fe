"""The history contract: the tables every target (sim or live) writes.

Analysis reads only these tables, so a run can be re-analysed offline and sim and live
runs are compared by the same code. On disk each table is a directory of Parquet parts
(``history/<table>/part-NNNNNN.parquet``, see ``writer``); the ``run`` table holds a row
written when the run starts and one written when it ends; ``edges`` (the overlay) is
optional. Times are integer nanoseconds since the run's start
(virtual time in sim, monotonic wall time in live); null where a stage was not reached.

``messages.t_dequeued`` (service start at the sequencer) extends the columns listed in
DESIGN.md so that queue wait and service time can be told apart.
"""

from __future__ import annotations

import pyarrow as pa

from msgstorm.history.events import EVENT_KINDS

__all__ = [
    "ACCOUNTS",
    "AUCTIONS",
    "BATCHES",
    "COMMITS",
    "AUCTION_ORDERS",
    "BLOCKS",
    "BLOCK_ARRIVALS",
    "CROSSCHAIN_TABLES",
    "DELIVERIES",
    "EDGES",
    "EVENTS",
    "EVENT_KINDS",
    "EXECUTIONS",
    "INCLUSIONS",
    "INTEGRITY",
    "L1_BLOCKS",
    "FORK_TABLES",
    "HOP_STAGES",
    "LAZY_TABLES",
    "MARKET_TABLES",
    "MARKS",
    "MESSAGES",
    "OPTIONAL_TABLES",
    "ORACLE",
    "PRICES",
    "RANKS",
    "RELAYS",
    "ROLLUP_TABLES",
    "REORGS",
    "RUN",
    "SIM_TARGET",
    "STATUSES",
    "TABLES",
    "TOPUPS",
    "TRIGGERS",
    "is_simulated",
]

# "unsent" (live only): intended before the run's end, never sent because the generator was
# behind when the run ended (its shortfall; it never sends late).
STATUSES: tuple[str, ...] = ("committed", "dropped", "rejected", "lost", "pending", "unsent")

# The run row's ``target`` of a simulated run (a live run's names its driver).
SIM_TARGET = "sim"


def is_simulated(target: object) -> bool:
    """Whether a run's ``target`` (its run row's, or summary.json's) is the simulator:
    ``"sim"``, or none recorded (an empty run row, a summary without the key). The one test
    of sim against live for analyses and reports."""
    return target is None or target == SIM_TARGET

MESSAGES = pa.schema(
    [
        pa.field("msg_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),  # the node the agent sends through
        pa.field("key", pa.int64(), nullable=False),
        pa.field("size", pa.int32(), nullable=False),  # bytes
        pa.field("fee", pa.float64(), nullable=False),  # max fee the sender will pay
        pa.field("t_intended", pa.int64(), nullable=False),
        pa.field("t_sent", pa.int64()),
        pa.field("t_received", pa.int64()),  # reached the sequencer's intake
        pa.field("t_dequeued", pa.int64()),  # service started
        pa.field("t_sequenced", pa.int64()),  # service done, seq_no assigned
        pa.field("seq_no", pa.int64()),
        pa.field("t_committed", pa.int64()),
        pa.field("block", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
    ]
)

DELIVERIES = pa.schema(
    [
        pa.field("msg_id", pa.int64(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("t_delivered", pa.int64(), nullable=False),
        pa.field("hops", pa.int32(), nullable=False),
    ]
)

# Event kinds: ``history/events.py`` (``EventKind``), shared by writers and readers.

EVENTS = pa.schema(
    [
        pa.field("t", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("node", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("height", pa.int64()),
        pa.field("detail", pa.string()),
    ]
)

RUN = pa.schema(
    [
        pa.field("scenario_name", pa.string(), nullable=False),
        pa.field("scenario_hash", pa.string(), nullable=False),
        pa.field("scenario_json", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("msgstorm_version", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("nodes_json", pa.string(), nullable=False),  # [{"name", "region"}] in index order
        pa.field("t_end", pa.int64(), nullable=False),  # last time the target observed
        pa.field("interrupted", pa.bool_(), nullable=False),
        pa.field("host", pa.string(), nullable=False),  # JSON host facts
        # False on the row written when the run starts, True on the one written when it ends:
        # a history whose last run row is not completed was cut off (killed, power lost).
        pa.field("completed", pa.bool_(), nullable=False),
    ]
)

# The overlay a run used: one row per directed node pair that is connected (``overlay``),
# and, for small networks, per pair that is not (so the report can compare the latency
# paths give with what a direct link would). ``mesh``: the link forwards gossip.
EDGES = pa.schema(
    [
        pa.field("src", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        pa.field("src_region", pa.string(), nullable=False),
        pa.field("dst_region", pa.string(), nullable=False),
        pa.field("base_latency_ns", pa.int64(), nullable=False),
        pa.field("overlay", pa.bool_(), nullable=False),
        pa.field("mesh", pa.bool_(), nullable=False),
    ]
)

# The market (``[market]``, sim only): what delay costs. ``prices``: each instrument's true
# price at every step of the path; ``oracle``: the true price behind each oracle ``price``
# message (its time ``t_price``); ``accounts``: every account at the start with its two
# line prices; ``triggers``: a keeper saw an account past its line in a price delivered to
# its node (``t``) and sent a ``liquidation`` message (``t_sent``); ``executions``: a
# liquidation message committed (``t``): executed at the on-chain price, or a no-op because
# the account had recovered there or was already liquidated.
PRICES = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
])

ORACLE = pa.schema([
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
    pa.field("t_price", pa.int64(), nullable=False),
    # What the message carried and when it was published: the true price and its time from an
    # honest oracle, something else from a byzantine one (an ``oracle`` fault). Null in
    # histories written before these columns.
    pa.field("published", pa.float64()),
    pa.field("t_published", pa.int64()),
])

ACCOUNTS = pa.schema([
    pa.field("account", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("side", pa.int8(), nullable=False),  # +1 long, -1 short
    pa.field("size", pa.float64(), nullable=False),  # units of the instrument
    pa.field("entry", pa.float64(), nullable=False),
    pa.field("collateral", pa.float64(), nullable=False),
    pa.field("liquidation_price", pa.float64(), nullable=False),
    pa.field("bankruptcy_price", pa.float64(), nullable=False),
])

TRIGGERS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),  # the price reached the keeper's node
    pa.field("t_sent", pa.int64(), nullable=False),
    pa.field("keeper", pa.string(), nullable=False),  # "<group>-<i>"
    pa.field("node", pa.string(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),  # the liquidation message
    pa.field("price_msg_id", pa.int64(), nullable=False),  # the oracle message it saw
    pa.field("price_seen", pa.float64(), nullable=False),
])

EXECUTIONS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),  # the liquidation message committed
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("keeper", pa.string(), nullable=False),
    # ``Outcome`` (``history/outcomes.py``): executed, recovered, already_liquidated, reverted, ...
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),  # the on-chain price then
    pa.field("t_price", pa.int64(), nullable=False),  # the time of the true price behind it
    pa.field("pnl", pa.float64(), nullable=False),
    pa.field("penalty", pa.float64(), nullable=False),
    pa.field("slippage", pa.float64(), nullable=False),  # its cost
    pa.field("slippage_bps", pa.float64(), nullable=False),
    pa.field("collateral_after", pa.float64(), nullable=False),
    pa.field("bad_debt", pa.float64(), nullable=False),
])

# ``topups``: a top-up message committed (``t``): the collateral it added (0 for an account
# already liquidated) and the account's new line prices.
TOPUPS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("amount", pa.float64(), nullable=False),
    pa.field("collateral_after", pa.float64(), nullable=False),
    pa.field("liquidation_price", pa.float64(), nullable=False),
    pa.field("bankruptcy_price", pa.float64(), nullable=False),
])

# ``frontruns``: a front-runner saw a victim's message at its node (``t``) and sent its own
# order (``t_sent``, ``msg_id``; a sandwich's back-run ``back_msg_id``); ``outcome``: "won"
# (its order took effect before the victim's, and a back-run after it), "lost", "unfinished"
# (one of them never took effect);
# ``value``: what a won race earned (its notional x the victim's price impact), else 0.
FRONTRUNS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("t_sent", pa.int64(), nullable=False),
    pa.field("frontrunner", pa.string(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("victim_msg_id", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("back_msg_id", pa.int64(), nullable=False),  # a sandwich's back-run (-1: none)
    pa.field("victim_notional", pa.float64(), nullable=False),
    pa.field("notional", pa.float64(), nullable=False),
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
])

# ``auctions``: a batch of the batch auction (``sequencer.policy = "batch_auction"`` with
# ``[market.orders]``) closed at ``t`` with ``orders`` limit orders (``buys`` of them buys)
# that took effect; they cleared ``volume`` at the uniform ``price`` (NaN: none crossed);
# ``imbalance``: demand - supply at that price; ``true_price``: the instrument's at ``t``.
# ``auction_orders``: every limit order drawn for an ``order`` message (sent at ``t``), its
# ``batch`` (-1: it never took effect) and its ``fill`` (units of the instrument).
AUCTIONS = pa.schema([
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("orders", pa.int64(), nullable=False),
    pa.field("buys", pa.int64(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
    pa.field("volume", pa.float64(), nullable=False),
    pa.field("imbalance", pa.float64(), nullable=False),
    pa.field("true_price", pa.float64(), nullable=False),
])

AUCTION_ORDERS = pa.schema([
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("side", pa.int8(), nullable=False),  # +1 buy, -1 sell
    pa.field("limit_price", pa.float64(), nullable=False),
    pa.field("quantity", pa.float64(), nullable=False),
    pa.field("true_price", pa.float64(), nullable=False),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("fill", pa.float64(), nullable=False),
])

# ``probe_executions``: a probe (``market/probes.py``: account ``account`` again at ``leverage``)
# liquidated at ``t`` by ``keeper`` at the on-chain ``price``; ``carrier_msg_id``: the message
# it committed with (its own, or the first from its keeper's node sent at or after it at a fee
# at most its); ``bad_debt``: what it could not pay there; ``size_after`` and
# ``collateral_after``: the probe's after the call (size 0: closed whole; above 0: a partial
# call, the probe still open). Probes never closed whole are marked to market at the horizon by
# the analysis, from their last row's size and collateral (or their own, without one).
PROBE_EXECUTIONS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("probe", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("leverage", pa.float64(), nullable=False),
    pa.field("keeper", pa.string(), nullable=False),
    pa.field("carrier_msg_id", pa.int64(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
    pa.field("bad_debt", pa.float64(), nullable=False),
    pa.field("size_after", pa.float64(), nullable=False),
    pa.field("collateral_after", pa.float64(), nullable=False),
])

# ``venue``: with ``[market.liquidation]`` beyond whole liquidations without a fund
# (``market/venue.py``), each movement of the venue's books at a liquidation committed at ``t``
# (``msg_id``): ``kind`` keeper_fee, insurance_fee, insurance_used, deleveraged (``account``
# the counterparty that paid), socialised (the account that paid), bad_debt, partial (a call
# that left the position open; ``amount`` the notional it closed); ``size_after`` and
# ``collateral_after`` the account's, ``fund_after`` the insurance fund's balance with that
# row's movement in. With ``[market.funding]`` (``market/funding.py``) also ``funding``: one
# position's payment in one interval at ``t`` (``msg_id`` -1; ``amount`` received, negative
# when paid).
VENUE = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("amount", pa.float64(), nullable=False),
    pa.field("size_after", pa.float64(), nullable=False),
    pa.field("collateral_after", pa.float64(), nullable=False),
    pa.field("fund_after", pa.float64(), nullable=False),
])

# ``socialised_losses``: with ``on_empty = "socialise"`` and no ``[market.topups]``, each
# socialised loss once (``market/venue.py``), in place of a ``venue`` row of kind
# ``socialised`` for every account it charged: the bankrupt ``account`` (of ``instrument``)
# whose liquidation committed at ``t`` (``msg_id``) at ``price``; ``charged`` the shortfall
# shared, ``total`` the profit at ``price`` it was shared over (Python's sum, in account order,
# of the open accounts of the instrument in profit), ``accounts`` how many paid, ``fund_after``
# the insurance fund's balance; ``venue_row`` the ``venue`` rows before it (it stands between
# them). The analysis replays each share, ``charged x profit / total``, from the accounts and
# the ``venue`` rows before it (``analysis/market.py``, ``venue_table``), so the accounts it
# charged and what they paid recompute exactly. With top-ups the run writes a row per charged
# account as before: the replay of their collateral would need the top-ups' order against the
# ``venue`` rows of a same commit time, which the history does not hold.
SOCIALISED_LOSSES = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
    pa.field("charged", pa.float64(), nullable=False),
    pa.field("total", pa.float64(), nullable=False),
    pa.field("accounts", pa.int64(), nullable=False),
    pa.field("fund_after", pa.float64(), nullable=False),
    pa.field("venue_row", pa.int64(), nullable=False),
])

# ``marks``: with ``[market.mark]`` (``market/mark.py``), each liquidation message committed at
# ``t`` (``msg_id``, for ``account``): the on-chain ``index`` it settles on and the ``mark`` it
# was judged at (past its line at the mark: it executes; not past: recovered).
MARKS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("index", pa.float64(), nullable=False),
    pa.field("mark", pa.float64(), nullable=False),
])

# ``cross_accounts``: each cross-margin account's positions at the start (``market/cross_margin.py``),
# one row per position; the account's collateral repeated on each.
CROSS_ACCOUNTS = pa.schema([
    pa.field("account", pa.int64(), nullable=False),
    pa.field("position", pa.int32(), nullable=False),
    pa.field("instrument", pa.string(), nullable=False),
    pa.field("side", pa.int8(), nullable=False),
    pa.field("size", pa.float64(), nullable=False),
    pa.field("entry", pa.float64(), nullable=False),
    pa.field("collateral", pa.float64(), nullable=False),
])

# ``cross_executions``: a committed liquidation of a cross account (``t``), judged at the
# on-chain prices: ``outcome`` executed (every position closed), partial (some left open),
# recovered or already_liquidated; the keeper saw the price at ``t_seen`` and sent at
# ``t_sent``; the closed positions' realised PnL, penalties and slippage summed; the
# account's collateral after, the insurance fund's cover and the bad debt left, and the fund's
# balance after (the cross accounts' fund: apart from the isolated accounts' ``venue`` books).
CROSS_EXECUTIONS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("account", pa.int64(), nullable=False),
    pa.field("keeper", pa.string(), nullable=False),
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("t_seen", pa.int64(), nullable=False),
    pa.field("t_sent", pa.int64(), nullable=False),
    pa.field("positions_closed", pa.int32(), nullable=False),
    pa.field("pnl", pa.float64(), nullable=False),
    pa.field("penalty", pa.float64(), nullable=False),
    pa.field("slippage", pa.float64(), nullable=False),
    pa.field("collateral_after", pa.float64(), nullable=False),
    pa.field("insurance_used", pa.float64(), nullable=False),
    pa.field("bad_debt", pa.float64(), nullable=False),
    pa.field("fund_after", pa.float64(), nullable=False),  # the cross accounts' insurance fund after it
])

MARKET_TABLES = ("prices", "oracle", "accounts", "triggers", "executions", "topups", "frontruns", "auctions",
                 "auction_orders", "probe_executions", "venue", "socialised_losses", "marks", "cross_accounts", "cross_executions")

# ``ranks``: under a queue policy with its own rule for when a message takes effect
# (``execution_rank``: ``batch_auction``, ``commit_reveal``), each committed message's rank:
# compared between messages, lower first; equal: at once (one batch); -1: never (a reveal
# after its commitment's window). Runs under any other policy have no such table.
RANKS = pa.schema([
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("rank", pa.int64(), nullable=False),
])

# ``integrity``: each message of an adversary the leader verified (``sim/integrity.py``):
# ``attack`` "tampered" (its contents altered on the way) or "replayed" (a copy of ``of_msg``,
# sent again as signed on the same chain or on an ``other``); ``detected``: the verification
# rejected it (else it was accepted and went on). Runs without an adversary have no such table.
INTEGRITY = pa.schema([
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
    pa.field("attack", pa.string(), nullable=False),
    pa.field("of_msg", pa.int64(), nullable=False),  # -1 for a tampered message
    pa.field("chain", pa.string(), nullable=False),  # "same" | "other" for a copy, "" otherwise
    pa.field("detected", pa.bool_(), nullable=False),
])

# Producers across the nodes (``[blocks.producers]``, sim only). ``blocks``: every block
# made, on the canonical chain or not (``canonical``: on the heaviest chain over every block
# made, at the run's end; ``parent`` 0 is the genesis block); ``block_arrivals``: when each
# node validated each block (its producer at ``t_produced``); ``reorgs``: a node's view
# moved to another branch, dropping ``depth`` blocks of its old one.
BLOCKS = pa.schema([
    pa.field("block", pa.int64(), nullable=False),
    pa.field("parent", pa.int64(), nullable=False),
    pa.field("height", pa.int64(), nullable=False),
    pa.field("producer", pa.string(), nullable=False),
    pa.field("t_produced", pa.int64(), nullable=False),
    pa.field("messages", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("canonical", pa.bool_(), nullable=False),
])

BLOCK_ARRIVALS = pa.schema([
    pa.field("block", pa.int64(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
])

REORGS = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("depth", pa.int64(), nullable=False),
    pa.field("old_tip", pa.int64(), nullable=False),
    pa.field("new_tip", pa.int64(), nullable=False),
])

# ``finalized``: a node's view put ``block`` (at ``height``) ``confirmations`` deep (that
# many blocks at and above it on the node's own longest chain) at ``t``, first or again: a
# node whose view later leaves a block it had finalised finalises the other branch's block
# at that height again, a second row (``analysis/safety.py`` reads it). With finality by
# votes: the node had seen votes for ``block`` from more than 2/3 of the validators' stake.
FINALIZED = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("height", pa.int64(), nullable=False),
    pa.field("block", pa.int64(), nullable=False),
])

# ``votes``: a validator voted for ``block`` (at ``height``) at ``t`` (finality by votes,
# ``blocks.producers.finality = "votes"``; a byzantine voter may vote for two blocks at a height).
VOTES = pa.schema([
    pa.field("t", pa.int64(), nullable=False),
    pa.field("voter", pa.string(), nullable=False),
    pa.field("height", pa.int64(), nullable=False),
    pa.field("block", pa.int64(), nullable=False),
])

# ``heights``: a node committed ``height`` at ``t_committed``, decided in ``round`` (0: the
# first), the block's ``proposer``; ``interval_ns`` since the node's previous commit (null at
# its first). Round-based BFT consensus (sim: ``blocks.producers.consensus = "tendermint"``;
# a live validator network writes the same rows from its nodes).
HEIGHTS = pa.schema([
    pa.field("node", pa.string(), nullable=False),
    pa.field("height", pa.int64(), nullable=False),
    pa.field("round", pa.int64(), nullable=False),
    pa.field("proposer", pa.string(), nullable=False),
    pa.field("t_committed", pa.int64(), nullable=False),
    pa.field("interval_ns", pa.int64()),
])

FORK_TABLES = ("blocks", "block_arrivals", "reorgs", "finalized", "votes", "heights")

# Two chains (``[crosschain]``, sim only). ``inclusions`` (the source's history, with
# producers): every block made and each message in it, on the canonical chain or not (a
# message's ``block`` column names only the block that committed it). ``relays`` (the
# destination's history): every crossing message of the source, what its relayer saw and
# did: ``t_seen`` its node held a block with it final (or, for a relayer that waits for
# inclusion only, held one), ``block`` that block, ``t_relayed`` submitted, ``t_arrival``
# past the proof check, entering the destination as a message of agent ``dest_agent``;
# ``outcome`` "relayed", "censored" (every relayer that saw it refused it) or "never_final".
INCLUSIONS = pa.schema([
    pa.field("block", pa.int64(), nullable=False),
    pa.field("msg_id", pa.int64(), nullable=False),
])

RELAYS = pa.schema([
    pa.field("src_msg_id", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("agent", pa.string(), nullable=False),
    pa.field("t_intended", pa.int64(), nullable=False),
    pa.field("relayer", pa.string(), nullable=False),  # "" when none relayed it
    pa.field("t_seen", pa.int64()),
    pa.field("block", pa.int64()),
    pa.field("t_relayed", pa.int64()),
    pa.field("t_arrival", pa.int64()),
    pa.field("dest_agent", pa.string(), nullable=False),
    pa.field("outcome", pa.string(), nullable=False),
])

CROSSCHAIN_TABLES = ("inclusions", "relays")

# ``hop_stages`` (sim, when a relay protocol other than push is set): each hop by which a
# block, or a traced message (sim/hop_stages.py: about a thousand a run), reached a node: ``kind`` "block" or
# "message", ``item`` (block or msg_id), the ``node``, the ``sender`` it came from (null at
# the origin), its ``hops`` from the origin, ``t`` its validation there, and the hop's time
# in each stage (sim/hop_stages.py says where each begins and ends): ``announce_ns`` (until
# the node asked the sender), ``request_ns`` (the requests' trips), ``transfer_ns`` (the
# payloads' uplink queue, bytes and trip), ``validation_ns`` (CPU queue and work). They sum
# to ``t`` minus the sender's own ``t``. Live targets write no such table.
HOP_STAGES = pa.schema([
    pa.field("kind", pa.string(), nullable=False),
    pa.field("item", pa.int64(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("sender", pa.string(), nullable=True),
    pa.field("hops", pa.int32(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
    pa.field("announce_ns", pa.int64(), nullable=False),
    pa.field("request_ns", pa.int64(), nullable=False),
    pa.field("transfer_ns", pa.int64(), nullable=False),
    pa.field("validation_ns", pa.int64(), nullable=False),
])

# A rollup (``[rollup]``: ``sim/rollup/``; on anvil ``live/chain/rollup.py``). ``commits``: each committed message's three
# commit levels: ``t_soft`` in an L2 block (soft-confirmed), ``t_safe`` its ``batch`` in an
# L1 block (the block's slot time), ``t_final`` that block final. ``batches``: each batch the
# batcher posted: opened with its first L2 block (``t_opened``), closed (``t_closed``: full, or
# its delay passed), landed in L1 ``slot`` (``t_safe``), final at ``t_final``; its L2 blocks,
# messages, their ``bytes`` and ``compressed_bytes``, its L1 ``gas``, ``blobs`` and ``blob_gas``
# and what it paid (``cost_wei``: gas x base fee + blob gas x blob base fee of its block).
# ``l1_blocks``: every L1 block from slot 1 to the last a batch landed in: its gas used (the
# rest of L1's plus the batches'), base fee, blobs, excess blob gas and blob base fee (wei),
# and how many batches it held; the fee rules are in ``rules/base_fee.py`` and ``rules/blob_fee.py``.
COMMITS = pa.schema([
    pa.field("msg_id", pa.int64(), nullable=False),
    pa.field("t_soft", pa.int64(), nullable=False),
    pa.field("t_safe", pa.int64()),
    pa.field("t_final", pa.int64()),
    pa.field("batch", pa.int64()),
])

BATCHES = pa.schema([
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("t_opened", pa.int64(), nullable=False),
    pa.field("t_closed", pa.int64(), nullable=False),
    pa.field("slot", pa.int64(), nullable=False),
    pa.field("t_safe", pa.int64(), nullable=False),
    pa.field("t_final", pa.int64(), nullable=False),
    pa.field("l2_blocks", pa.int64(), nullable=False),
    pa.field("messages", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("compressed_bytes", pa.int64(), nullable=False),
    pa.field("full", pa.bool_(), nullable=False),
    pa.field("gas", pa.int64(), nullable=False),
    pa.field("blobs", pa.int64(), nullable=False),
    pa.field("blob_gas", pa.int64(), nullable=False),
    pa.field("cost_wei", pa.float64(), nullable=False),
])

L1_BLOCKS = pa.schema([
    pa.field("slot", pa.int64(), nullable=False),
    pa.field("t", pa.int64(), nullable=False),
    pa.field("gas_used", pa.int64(), nullable=False),
    pa.field("base_fee", pa.int64(), nullable=False),
    pa.field("blobs", pa.int64(), nullable=False),
    pa.field("excess_blob_gas", pa.int64(), nullable=False),
    pa.field("blob_base_fee", pa.int64(), nullable=False),
    pa.field("batches", pa.int64(), nullable=False),
])

ROLLUP_TABLES = ("commits", "batches", "l1_blocks")

# Tables written only by some runs: each gets its directory with its first rows.
LAZY_TABLES = (*MARKET_TABLES, "ranks", "integrity", *FORK_TABLES, *CROSSCHAIN_TABLES, "hop_stages",
               *ROLLUP_TABLES)

TABLES: dict[str, pa.Schema] = {
    "messages": MESSAGES,
    "deliveries": DELIVERIES,
    "events": EVENTS,
    "run": RUN,
    "edges": EDGES,
    "prices": PRICES,
    "oracle": ORACLE,
    "accounts": ACCOUNTS,
    "triggers": TRIGGERS,
    "executions": EXECUTIONS,
    "topups": TOPUPS,
    "frontruns": FRONTRUNS,
    "auctions": AUCTIONS,
    "auction_orders": AUCTION_ORDERS,
    "probe_executions": PROBE_EXECUTIONS,
    "venue": VENUE,
    "socialised_losses": SOCIALISED_LOSSES,
    "marks": MARKS,
    "cross_accounts": CROSS_ACCOUNTS,
    "cross_executions": CROSS_EXECUTIONS,
    "ranks": RANKS,
    "integrity": INTEGRITY,
    "blocks": BLOCKS,
    "block_arrivals": BLOCK_ARRIVALS,
    "reorgs": REORGS,
    "finalized": FINALIZED,
    "votes": VOTES,
    "heights": HEIGHTS,
    "inclusions": INCLUSIONS,
    "relays": RELAYS,
    "hop_stages": HOP_STAGES,
    "commits": COMMITS,
    "batches": BATCHES,
    "l1_blocks": L1_BLOCKS,
}
# Tables a history may lack (written by newer targets only; a live target may not know its
# overlay; only a run with a market writes the market's, only some policies ``ranks``): read as empty.
OPTIONAL_TABLES: frozenset[str] = frozenset({"edges", *LAZY_TABLES})
