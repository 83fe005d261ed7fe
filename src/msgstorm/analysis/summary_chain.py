"""The summary.json model's network and chain sections: propagation by region, forks and
block reach, finality by votes, the second chain (crosschain, collateral), relay and the
hop-by-hop split.

Place in the pipeline: part of the summary's typed model; ``analysis.summary_model.Summary``
holds these sections and generates the shipped schema from them.
"""

from typing import Annotated, Literal

from pydantic import Field

from msgstorm.analysis.summary_fields import Closed, Count, Ms, Seconds

__all__ = [
    "Collateral",
    "Consensus",
    "ConsensusNode",
    "IntervalMs",
    "CollateralBadDebt",
    "CollateralOpen",
    "CompactCounts",
    "CrossFates",
    "CrossStage",
    "Crosschain",
    "Outage",
    "Rollup",
    "SentinelResult",
    "CrossResult",
    "Finality",
    "ForkBlocks",
    "ForkExpectation",
    "ForkReorgs",
    "Forks",
    "HopCount",
    "HopSplit",
    "HopStagesMs",
    "Reach",
    "RegionPropagation",
    "Relay",
    "SourceHalt",
]


class RegionPropagation(Closed):
    p50: Ms
    p90: Ms
    p99: Ms
    count: Count


class ForkBlocks(Closed):
    made: Annotated[Count, Field(description="blocks made by every producer")]
    canonical: Annotated[Count, Field(description="blocks on the canonical chain at the run's end")]
    stale: Annotated[Count, Field(description="blocks off it (orphaned)")]
    stale_rate: Annotated[float, Field(ge=0, le=1, description="stale / made")]
    fork_heights: Annotated[Count, Field(description="heights at which more than one block was made")]
    fork_rate: Annotated[float | None, Field(ge=0, description="fork heights / the canonical chain's height")]
    height: Annotated[Count, Field(description="the canonical chain's height")]


class ForkReorgs(Closed):
    count: Annotated[Count, Field(description="times a node's view moved to another branch")]
    max_depth: Annotated[Count, Field(description="most blocks one such move dropped")]
    mean_depth: Annotated[float | None, Field(ge=0, description="blocks dropped per move, on average")]
    canonical: Annotated[Count, Field(description="moves of the canonical chain (the longest over every block)")]
    final: Annotated[Count, Field(description="of those, moves deeper than blocks.producers.confirmations: "
                                               "they undid commits already written")]


class Reach(Closed):
    p50: Ms
    p90: Ms
    blocks_reached: Annotated[Count, Field(description="blocks that reached this share of the nodes")]


class IntervalMs(Closed):
    p50: Ms
    p99: Ms
    max: Ms
    mean: Ms


class ConsensusNode(Closed):
    committed: Annotated[Count, Field(description="heights this node committed")]
    height: Annotated[Count, Field(description="the last height it committed")]
    above_round_0: Annotated[Count, Field(description="of its commits, those decided in a round above 0")]
    lag_max: Annotated[Count, Field(description="the most heights it was behind the highest committed one")]
    interval_p50_ms: Ms
    proposed: Annotated[Count, Field(description="committed heights whose block it proposed")]


class Consensus(Closed):
    height: Annotated[Count, Field(description="the highest height committed")]
    nodes: Annotated[Count, Field(description="nodes that committed a height")]
    rounds_mean: Annotated[float | None, Field(ge=1, description="rounds a committed height took (its commit's "
                                                                 "round + 1: 1 in its first round), mean")]
    rounds_max: Annotated[Count, Field(description="the most rounds a committed height took (its commit's round + 1: "
                                                   "1 in its first round)")]
    heights_above_round_0: Annotated[Count, Field(description="heights committed in a round above 0")]
    interval_ms: Annotated[IntervalMs, Field(description="time between consecutive heights' first commits")]
    lag_max: Annotated[Count, Field(description="the most heights any node was behind the highest committed one")]
    lag_bound: Annotated[Count, Field(description="desync.max_height_gap: a lag above it is a failure condition")]
    conflicting_heights: Annotated[Count, Field(description="heights at which two nodes committed different "
                                                            "blocks (safety)")]
    conflicts_at: Annotated[list[int], Field(description="the first of those heights (at most 5)")]
    longest_without_commit_ms: Annotated[Ms, Field(description="the longest stretch of the run without a "
                                                               "commit (liveness)")]
    mempool_full: Annotated[Count, Field(description="times a node's mempool was full and turned arrivals "
                                                      "away (once a node and height)")]
    conditions: Annotated[list[str], Field(description="failure conditions that fired: \"round above 0\", "
                                                       "\"height lag above N\", \"mempool full\"")]
    per_node: Annotated[dict[str, ConsensusNode], Field(description="each node that committed a height")]


class Finality(Closed):
    validators: Annotated[Count, Field(description="validators voting (the producers)")]
    byzantine: Annotated[Count, Field(description="byzantine voters (equivocate_votes faults)")]
    byzantine_voters: Annotated[list[str], Field(description="their names")]
    byzantine_stake: Annotated[float, Field(ge=0, le=1, description="their share of the validators' stake")]
    within_bound: Annotated[bool, Field(description="byzantine stake below 1/3, the bound a two-thirds quorum "
                                                    "implies (f < n/3 for equal stakes)")]
    conflicting_heights: Annotated[Count, Field(description="heights at which honest nodes finalised different "
                                                            "blocks (the safety check's)")]
    conflicts_at: Annotated[list[int], Field(description="the first of those heights (at most 5), ascending")]
    safe: Annotated[bool, Field(description="no conflicting heights")]
    live: Annotated[bool, Field(description="no honest node went longer than stall_bound_ms without finalising")]
    longest_stall_ms: Annotated[float | None, Field(ge=0, description="the longest an honest node went without "
                                                                      "finalising while blocks were made")]
    stall_bound_ms: Annotated[float | None, Field(ge=0, description="3 x the median gap between blocks made")]
    finalized_height: Annotated[Count, Field(description="the highest height any node finalised")]


class ValidatorRow(Closed):
    name: str
    heights: Annotated[Count, Field(description="heights it committed during the run")]
    proposed: Annotated[Count, Field(description="of the heights committed, those it proposed")]
    rounds_above_0: Annotated[Count, Field(description="heights it committed that were decided in a round above 0")]
    interval_p50_ms: Ms
    interval_max_ms: Annotated[float | None, Field(description="the longest between two of its commits (ms)")]
    mempool_mean: Annotated[float | None, Field(ge=0, description="its mempool's transactions, mean of the samples")]
    mempool_max: Annotated[int | None, Field(ge=0, description="and the most sampled")]
    height_lag_max: Annotated[Count, Field(description="the most heights it was behind the highest validator, "
                                                       "measured at every commit")]
    evidence: Annotated[Count | None, Field(description="evidence of its misbehaviour (duplicate votes) the "
                                                         "chain committed; absent with none in the run")] = None


class HeightRow(Closed):
    height: Count
    t_s: Annotated[float, Field(description="its first commit by any validator (s)")]
    round: Annotated[int, Field(ge=-1, description="the round it was decided in (-1: not known, the last height)")]
    proposer: str
    interval_ms: Ms


class EvidenceRow(Closed):
    t_s: Annotated[float, Field(ge=0, description="the first commit of the block holding it (s)")]
    height: Annotated[Count, Field(description="the block holding it")]
    validator: Annotated[str, Field(description="the validator it proves misbehaved (its address if not one of "
                                                "the run's)")]
    type: Annotated[str, Field(description="CometBFT's evidence type, e.g. DuplicateVoteEvidence")]
    vote_height: Annotated[int | None, Field(ge=0, description="the height of the conflicting votes")]
    round: Annotated[int | None, Field(ge=0, description="their round")]


class Validators(Closed):
    validators: list[ValidatorRow]
    heights: Annotated[list[HeightRow], Field(description="per height: round, proposer, interval since the last")]
    max_round: Annotated[Count, Field(description="the highest round any height needed")]
    longest_halt_ms: Annotated[float | None, Field(ge=0, description="the longest stretch without any commit")]
    halt_from_s: Seconds
    halt_to_s: Seconds
    evidence: Annotated[list[EvidenceRow] | None, Field(
        description="each item of evidence the chain committed, in order (absent with none in the run)")] = None


class CrossFates(Closed):
    delivered: Annotated[Count, Field(description="committed on the destination")]
    censored: Annotated[Count, Field(description="seen, refused by every relayer that saw it")]
    never_final: Annotated[Count, Field(description="no relayer saw it final on the source")]
    reverted_on_source: Annotated[Count, Field(description="relayed from a block the source's canonical chain "
                                                           "left (a reorg deeper than the relayer waited)")]
    undelivered: Annotated[Count, Field(description="relayed, not committed on the destination")]


class CrossStage(Closed):
    p50: Ms
    mean: Ms


class SourceHalt(Closed):
    from_s: Annotated[float, Field(ge=0, description="the last commit before the gap")]
    to_s: Annotated[float, Field(ge=0, description="the next commit, or the run's end")]
    gap_ms: Ms
    bound_ms: Annotated[float | None, Field(description="3 x the median gap between commits")]
    faults: Annotated[list[str], Field(description="faults whose window overlaps the gap: kind and start")]
    seen_inside: Annotated[Count, Field(description="crossing messages the relayer that carried them saw inside it (final, or included for one that waits for inclusion only)")]


class CollateralOpen(Closed):
    censored: Annotated[Count, Field(description="refused by every relayer that saw it")]
    never_final: Annotated[Count, Field(description="no relayer saw it final on the source (a halted source)")]
    undelivered: Annotated[Count, Field(description="relayed, not committed on the destination (from a block "
                                                    "a reorg took back or not)")]


class CollateralBadDebt(Closed):
    one_chain: Annotated[float, Field(description="the same positions closed on one chain: when the source "
                                                  "executed them, at the true price then (the same rule)")]
    across: Annotated[float, Field(description="closed at the destination's true price when the relayed "
                                               "liquidation committed there, or left open and marked at the horizon")]
    extra: Annotated[float, Field(description="across - one_chain: what waiting for the relay cost")]
    open: Annotated[float, Field(ge=0, description="the part of `across` on positions left open")]


class Collateral(Closed):
    positions: Annotated[Count, Field(description="liquidations the source executed, each closing a position on "
                                                  "the destination")]
    closed: Annotated[Count, Field(description="their relayed liquidation committed on the destination")]
    closed_reverted_on_source: Annotated[Count, Field(description="of those, relayed from a block a reorg took "
                                                                  "back on the source")]
    open: CollateralOpen
    open_accounts: Annotated[list[int], Field(description="the accounts left open, the first 20 by id")]
    wait_ms: Annotated[dict[str, float | None], Field(
        description="p50, max, mean of destination commit - source execution, over the closed (below 0: closed "
                    "before the source executed it, relayed by one that does not wait from a block a reorg took back)")]
    split_ms: Annotated[dict[str, CrossStage], Field(
        description="the closed liquidations' cross-chain split: source_finality (keeper's send -> seen final), "
                    "relay, proof_check, destination (arrival -> commit)")]
    bad_debt: CollateralBadDebt


class Crosschain(Closed):
    messages: Annotated[Count, Field(description="crossing messages of the source")]
    fates: CrossFates
    latency_ms: Annotated[dict[str, float | None], Field(
        description="p50, p90, p99, max, mean of destination commit - source t_intended, over the delivered")]
    split_ms: Annotated[dict[str, CrossStage], Field(
        description="source_finality (intent -> seen final), relay, proof_check, destination (arrival -> commit): "
                    "p50 and mean over the delivered; the means add up to the latency's")]
    by_relayer: Annotated[dict[str, Count], Field(description="messages each relayer carried")]
    last_seen_s: Annotated[float | None, Field(description="the last time a relayer saw a crossing message final")]
    source_halt: Annotated[SourceHalt | None, Field(
        description="the source's longest gap without a commit, when over 3 median gaps")]


class RollupLevel(Closed):
    p50: Ms
    p99: Ms
    max: Ms


class RollupBatches(Closed):
    count: Annotated[Count, Field(description="batches the batcher posted")]
    full: Annotated[Count, Field(description="of them closed full (max_size), the rest by max_delay")]
    compressed_bytes_mean: Annotated[float | None, Field(ge=0)]
    interval_s_mean: Annotated[float | None, Field(ge=0, description="mean time between two batches' closing")]
    data: Literal["calldata", "blobs"]


class FirstLastMax(Closed):
    first: float
    last: float
    max: float


class RollupL1(Closed):
    blocks: Annotated[Count, Field(description="L1 blocks from slot 1 to the last a batch landed in")]
    cost_eth: Annotated[float, Field(ge=0, description="what the batches paid: gas x base fee + blob gas x blob "
                                                       "base fee")]
    base_fee_gwei: FirstLastMax | None
    blob_base_fee_wei: FirstLastMax | None


class Rollup(Closed):
    messages: Annotated[Count, Field(description="committed messages with their three commit levels")]
    latency_ms: Annotated[dict[str, RollupLevel], Field(
        description="soft (in an L2 block), safe (batch in an L1 block), final (that block final): from t_intended")]
    split_ms: Annotated[dict[str, RollupLevel], Field(
        description="sequencing (intent -> soft: the sequencer and its L2 block), batch_and_l1 (soft -> safe), finality "
                    "(safe -> final)")]
    batches: RollupBatches
    l1: RollupL1


class Outage(Closed):
    at_s: Annotated[float, Field(ge=0, description="when the sequencer went down")]
    down_s: Annotated[float | None, Field(ge=0, description="how long it was down (null: still down at the end)")]
    backlog: Annotated[Count, Field(description="messages queued when it returned")]
    drain_s: Annotated[float | None, Field(ge=0, description="from its return until the last message received "
                                                               "before it was sequenced")]
    lost_unposted: Annotated[Count | None, Field(
        exclude_if=lambda lost: lost is None,
        description="with lose_unposted: the messages it lost, accepted and in no batch on L1 when it went down "
                    "(dropped); absent otherwise")] = None


class SentinelResult(Closed):
    grace_s: Annotated[float, Field(ge=0, description="the pause after the sequencer is back")]
    health_factor_bound: Annotated[float | None, Field(description="below it an account is liquidated anyway")]
    blocked: Annotated[Count, Field(description="liquidations the guard paused")]
    after_pause: Annotated[Count, Field(description="of them executed when the pause lifted")]
    let_through: Annotated[Count, Field(description="liquidations executed while paused (below the bound)")]
    bad_debt: Annotated[float, Field(description="bad debt over every executed liquidation")]


class CrossPercentiles(Closed):
    p50: Annotated[float | None, Field(description="median")]
    p99: Annotated[float | None, Field(description="99th percentile")]


class CrossResult(Closed):
    accounts: Annotated[Count, Field(description="cross-margin accounts")]
    positions: Annotated[Count, Field(description="their positions (one per instrument each holds)")]
    hedged: Annotated[Count, Field(description="accounts holding a long and a short")]
    eligible: Annotated[Count, Field(description="accounts the true prices took below their maintenance requirement "
                                                 "within the horizon (as opened)")]
    eligible_hedged: Annotated[Count, Field(description="of them hedged")]
    executed: Annotated[Count, Field(description="calls that closed every position")]
    partial_calls: Annotated[Count, Field(description="calls that closed some positions and left the rest open")]
    recovered: Annotated[Count, Field(description="calls that found the account above its requirement")]
    already_liquidated: Annotated[Count, Field(description="calls that found every position closed")]
    positions_closed: Annotated[Count, Field(description="positions the calls closed")]
    delay_ms: Annotated[CrossPercentiles, Field(description="from the price a keeper acted on reaching it to its "
                                                            "call's commit, over the calls that closed something")]
    penalties: Annotated[float, Field(ge=0, description="the calls' penalties (keepers' and the fund's)")]
    insurance_used: Annotated[float, Field(ge=0, description="shortfalls the insurance fund covered")]
    bad_debt: Annotated[float, Field(ge=0, description="shortfalls left after the fund")]
    bad_debt_accounts: Annotated[Count, Field(description="accounts that ended in bad debt")]


class ForkExpectation(Closed):
    fork_probability: Annotated[float | None, Field(
        ge=0, le=1, description="mean over the blocks of 1 - exp(-sum_j w_j t_j / interval): the chance a competing "
                                "block is made before the block reaches its producer (w_j: hash shares; t_j: the "
                                "block's arrival there)")]
    stderr: Annotated[float | None, Field(ge=0, description="its standard error over the blocks")]
    blocks: Annotated[Count, Field(description="blocks that reached every producer other than their maker (those "
                                               "averaged; a block some producer never got is left out)")]
    stale_rate_interval: Annotated[list[float] | None, Field(
        min_length=2, max_length=2, description="Wilson's 95% interval of stale / made")]


class Forks(Closed):
    blocks: ForkBlocks
    reorgs: ForkReorgs
    reach_ms: Annotated[dict[str, Reach], Field(
        description="per share of the nodes (blocks.producers.reach: \"50%\", \"90%\", \"100%\" by default): "
                    "time from a block's making until that many nodes validated it, over the blocks that got there")]
    arrival_ms: Annotated[dict[str, float | None], Field(
        description="p50, p90, p99 of every block's arrival at a node other than the one that made it (its producer, "
                    "or where a twin of it runs), after its making; a peer's arrival at once counts, at 0")]
    arrival_by_region_ms: Annotated[dict[str, RegionPropagation], Field(
        description="the same arrivals by the receiving node's region (sorted by name): p50, p90, p99 and how many")]
    expected: Annotated[ForkExpectation | None, Field(
        description="proof of work: the fork probability the run's block arrivals imply, and the stale rate's "
                    "interval to hold it against; null for other producer rules")] = None


class CompactCounts(Closed):
    duplicates: Annotated[Count, Field(description="compact blocks a node received when it had the block already")]
    getblocktxn: Annotated[Count, Field(description="requests for a block's missing messages (one round trip each)")]
    held: Annotated[Count, Field(description="messages of compact blocks their receivers held already (not sent "
                                             "again)")]
    missing: Annotated[Count, Field(description="messages those requests asked for")]
    missing_bytes: Annotated[Count, Field(description="their bytes, sent in answer")]


class Relay(Closed):
    payloads: Annotated[Count, Field(description="payload copies put on uplinks: pushes, answers to requests, "
                                                 "compact blocks and missing messages")]
    announcements: Annotated[Count, Field(description="announcements received")]
    requests: Annotated[Count, Field(description="requests served (payloads sent on request)")]
    fallbacks: Annotated[Count, Field(description="requests to another peer after a timeout")]
    duplicates_avoided: Annotated[Count, Field(description="announcements that led to no transfer (the node held "
                                                           "or had asked for the item): copies push would have sent")]
    compact: Annotated[CompactCounts, Field(
        description="compact block relay's counts (zero without kinds.block = \"compact\")")]
    uploaded_bytes: Annotated[dict[str, int], Field(description="payload bytes the nodes of each region uploaded")]
    uploaded_bytes_per_node: Annotated[dict[str, int | None], Field(
        description="the same per node of the region (null for a region without nodes)")]


class HopStagesMs(Closed):
    announce: Annotated[float | None, Field(ge=0, description="until the node asked its sender for the item")]
    request: Annotated[float | None, Field(ge=0, description="the requests' trips (getdata, getblocktxn)")]
    transfer: Annotated[float | None, Field(ge=0, description="the payloads' uplink queue, bytes and trip")]
    validation: Annotated[float | None, Field(ge=0, description="the CPU queue and the validation")]
    total: Annotated[float | None, Field(ge=0, description="the four together")]


class HopCount(Closed):
    p50: Annotated[int | None, Field(ge=0, description="median hops from the origin, over the arrivals")]
    max: Annotated[Count, Field(description="the most hops any arrival took")]


class HopSplit(Closed):
    items: Annotated[Count, Field(description="items traced (every block; about a thousand messages a run, every n-th msg_id "
                                                 "history.delivery_sample keeps)")]
    arrivals: Annotated[Count, Field(description="arrivals at a node other than the item's origin")]
    hops: HopCount
    path_ms: Annotated[HopStagesMs, Field(
        description="each stage summed along the path from the origin, mean over the arrivals (the total is "
                    "the mean arrival after the item's making or sending)")]
    median_node_ms: Annotated[HopStagesMs, Field(
        description="the same along the path to each item's median node (nearest rank), mean over the items")]
    hop_ms: Annotated[HopStagesMs, Field(description="one hop's stages, mean over the hops")]
