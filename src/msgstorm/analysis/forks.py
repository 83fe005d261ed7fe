"""Forks: stale blocks, reorgs and how fast blocks reach the nodes, from the history.

Place in the pipeline: analysis, read by ``analysis/summary.py`` as summary.json's
``forks`` (absent for a run without ``[blocks.producers]``, whose history has no
``blocks`` table). It reads only the ``blocks``, ``block_arrivals`` and ``reorgs`` tables
and the ``canonical_reorg`` events:

- ``blocks``: made, on the canonical chain, ``stale`` (the rest), ``stale_rate`` (stale /
  made); ``fork_heights``: heights at which more than one block was made, and
  ``fork_rate``: those over the canonical chain's height;
- ``reorgs``: a node's view moving to another branch: how many, their depth (blocks the
  view dropped) as max and mean; ``canonical``: reorgs of the canonical chain, ``final``:
  those deeper than ``confirmations`` (they undid a commit already written; 0 on a sound
  setting);
- ``reach_ms``: for each share of the nodes (``blocks.producers.reach``; 50%, 90%, 100% by
  default), the time from a block's making
  until that many nodes validated it, as the median and p90 over the blocks that got there
  (``blocks_reached``: how many did);
- ``arrival_ms``: p50 / p90 / p99 of every arrival of a block at a node other than the
  one that made it, after its making: a peer that validated it at once counts, at 0; the
  node that made it does not, even when the block comes back to it by gossip (an
  equivocating producer's twin block). The node that made a block is its producer, or
  where a twin of the producer runs (``twins``: the ``block_produced`` event's ``twin_at``).
- ``arrival_by_region_ms``: the same arrivals by the receiving node's region, with their
  count (as ``propagation_ms`` gives messages').

- ``expected`` (proof of work only): the fork probability the run's own block arrivals
  imply, and the observed stale rate's 95% interval to hold it against (below).

Percentiles are nearest-rank (as every latency of the summary).

The expected fork probability. Under proof of work each producer j mines as a Poisson
process of rate w_j / interval (w_j: its share of the hash, summing to 1). A block made at
0 that reaches producer j at t_j meets no competing block with probability
exp(−Σ_j w_j t_j / interval): it forks with 1 − exp(−Σ_j w_j t_j / interval), t_j being 0
for the node that made it. The mean of that over the blocks that reached every other
producer is ``fork_probability`` (``stderr``: its standard error over those blocks); a
block some producer never got has no such sum (that producer's race with it never ended)
and is left out, not counted as if the producer had it at once. A stale block is the loser of such a race, so where forks
are rare a run's stale rate estimates the same number (where they are not, races overlap:
a block met, and the block that met it met in turn, two blocks met for one stale, and the
stale rate falls below it); ``stale_rate_interval`` is Wilson's 95% interval of stale / made. The weights: ``blocks.producers.shares`` when it lists them; equal shares
when they are drawn from a distribution (their expectation: the draws are independent of
where the producers are); the producers are ``blocks.producers.nodes``, every node when
that is empty, or (``count`` producers drawn at random) the nodes that made a block.
Unlike a stale count over a few hundred blocks, whose interval is tens of percent wide,
this expectation is exact for the arrival times the run gave, so two simulators of one
network compare by it within a few percent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of, ms, percentiles, scenario_section
from msgstorm.analysis.propagation import UNKNOWN_REGION
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["REACH_SHARES", "forks_summary", "reach_times_ns", "wilson_interval"]

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile

REACH_SHARES = (0.5, 0.9, 1.0)


def reach_times_ns(block_ids: np.ndarray, t_produced: np.ndarray, arrival_block: np.ndarray,
                   arrival_t: np.ndarray, nodes: int, share: float) -> np.ndarray:
    """Per block (those that got there), the time from its making until ``ceil(share ×
    nodes)`` nodes held it (its producer counts, at 0)."""
    need = max(1, math.ceil(share * nodes - 1e-9))
    made = dict(zip(block_ids.tolist(), t_produced.tolist(), strict=True))
    order = np.lexsort((arrival_t, arrival_block))
    blocks, times = arrival_block[order], arrival_t[order]
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]) if blocks.size else np.array([], np.int64)
    ends = np.r_[starts[1:], blocks.size] if blocks.size else starts
    out = [int(times[start + need - 1]) - made[int(blocks[start])]
           for start, end in zip(starts.tolist(), ends.tolist(), strict=True) if end - start >= need]
    return np.array(out, dtype=np.int64)


def forks_summary(history: History) -> dict[str, Any] | None:
    """summary.json's ``forks``; None for a run without producers across the nodes."""
    blocks = history.table("blocks")
    if blocks.num_rows == 0:
        return None
    block_ids = blocks.column("block").to_numpy()
    heights = blocks.column("height").to_numpy()
    t_produced = blocks.column("t_produced").to_numpy()
    canonical = blocks.column("canonical").to_numpy(zero_copy_only=False)
    made = int(block_ids.size)
    on_chain = int(canonical.sum())
    _, per_height = np.unique(heights, return_counts=True)
    fork_heights = int((per_height > 1).sum())
    top = int(heights[canonical].max()) if on_chain else 0

    reorgs = history.table("reorgs")
    depth = reorgs.column("depth").to_numpy()
    canonical_reorgs = events_of(history, EventKind.CANONICAL_REORG).details()

    # The receiving nodes as codes, read as the parts store them (encoding the whole
    # column's strings here would import pyarrow.compute, about 0.15 s of a run).
    node_codes, node_names = history.codes("block_arrivals", "node")
    arrivals = history.columns("block_arrivals", ["block", "t"])
    arrival_block = arrivals.column("block").to_numpy()
    arrival_t = arrivals.column("t").to_numpy()
    nodes = max(1, len(history.nodes))
    settings = scenario_section(history, "blocks").get("producers") or {}
    reach: dict[str, Any] = {}
    for share in settings.get("reach") or REACH_SHARES:
        times = reach_times_ns(block_ids, t_produced, arrival_block, arrival_t, nodes, share)
        p50, p90 = _ms(times, (50, 90))
        reach[f"{share * 100:g}%"] = {"p50": p50, "p90": p90, "blocks_reached": int(times.size)}
    # Each arrival's block as a row of ``blocks``, its delay and whether the receiving node
    # is the one that made the block (left out of every figure below).
    by_id = np.argsort(block_ids, kind="stable")
    row = by_id[np.searchsorted(block_ids, arrival_block, sorter=by_id)] if arrival_block.size \
        else np.zeros(0, dtype=np.intp)
    delay = arrival_t - t_produced[row]
    maker = _maker_codes(history, block_ids, blocks.column("producer").to_pylist(), node_names)[row]
    other = node_codes != maker
    a50, a90, a99 = _ms(delay[other], (50, 90, 99))
    return {
        "blocks": {
            "made": made,
            "canonical": on_chain,
            "stale": made - on_chain,
            "stale_rate": round((made - on_chain) / made, 6),
            "fork_heights": fork_heights,
            "fork_rate": round(fork_heights / top, 6) if top else None,
            "height": top,
        },
        "reorgs": {
            "count": int(depth.size),
            "max_depth": int(depth.max()) if depth.size else 0,
            "mean_depth": round(float(depth.mean()), 3) if depth.size else None,
            "canonical": len(canonical_reorgs),
            "final": sum(1 for detail in canonical_reorgs if detail.get("final")),
        },
        "reach_ms": reach,
        "arrival_ms": {"p50": a50, "p90": a90, "p99": a99},
        "arrival_by_region_ms": _by_region(history, node_codes, node_names, delay, other),
        "expected": _expected(history, settings, made - on_chain, made, node_codes, node_names, arrival_block,
                              delay, other, maker),
    }


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion (95% by default). Written out, not
    scipy.stats.binomtest's: importing scipy.stats would cost every run more than three lines
    of arithmetic (docs/performance.md, "The Bitcoin preset"); tests/test_sim_forks.py checks
    it against it."""
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _maker_codes(history: History, block_ids: np.ndarray, producers: list[str], node_names: list[str]) -> np.ndarray:
    """Per row of ``blocks``, the node that made the block as a code into ``node_names`` (-1
    for a node no arrival names): its producer, or the node a twin of the producer ran at
    (``block_produced``'s ``twin_at``)."""
    made_at = dict(zip(block_ids.tolist(), producers, strict=True))
    for detail in events_of(history, EventKind.BLOCK_PRODUCED).details():
        if "twin_at" in detail and detail.get("block") in made_at:
            made_at[detail["block"]] = detail["twin_at"]
    code_of = {name: code for code, name in enumerate(node_names)}
    return np.array([code_of.get(made_at[block], -1) for block in block_ids.tolist()], dtype=np.int64)


def _expected(history: History, settings: dict[str, Any], stale: int, made: int, node_codes: np.ndarray,
              node_names: list[str], arrival_block: np.ndarray, delay: np.ndarray, other: np.ndarray,
              maker: np.ndarray) -> dict[str, Any] | None:
    """``forks.expected`` (see the module docstring); None unless blocks come by proof of work.
    ``other``: the arrivals at a node other than the one that made the block, ``maker``: that
    node per arrival (a code into ``node_names``)."""
    interval = scenario_section(history, "blocks").get("interval")
    if settings.get("rule") != "pow" or not interval:
        return None
    nodes = [str(name) for name in settings.get("nodes") or []]
    if not nodes:
        if settings.get("count"):
            nodes = sorted({str(name) for name in history.table("blocks").column("producer").to_pylist()})
        else:
            nodes = [str(entry["name"]) for entry in history.nodes]
    shares = settings.get("shares")
    weights = ([float(share) for share in shares] if isinstance(shares, list) and len(shares) == len(nodes)
               else [1.0] * len(nodes))
    total_weight = sum(weights)
    weight_of = dict(zip(nodes, (w / total_weight for w in weights), strict=True))
    code_weight = np.array([weight_of.get(name, 0.0) for name in node_names] or [0.0])
    weight = np.where(other, code_weight[node_codes], 0.0)  # the maker's t_j is 0
    blocks, first, at = np.unique(arrival_block, return_index=True, return_inverse=True)
    reached = np.bincount(at, weights=(weight > 0).astype(np.float64), minlength=blocks.size)
    exposure = np.bincount(at, weights=weight * delay, minlength=blocks.size) / float(interval)
    producers = sum(1 for w in weight_of.values() if w > 0)
    maker_produces = np.append(code_weight, 0.0)[maker[first]] > 0  # code -1: not a producer
    every = reached == producers - maker_produces  # each node arrives once per block
    probability = 1 - np.exp(-exposure[every])
    interval95 = wilson_interval(stale, made) if made else None
    return {
        "fork_probability": round(float(probability.mean()), 6) if probability.size else None,
        "stderr": round(float(probability.std(ddof=1) / math.sqrt(probability.size)), 6)
        if probability.size > 1 else None,
        "blocks": int(probability.size),
        "stale_rate_interval": None if interval95 is None else [round(bound, 6) for bound in interval95],
    }


def _by_region(history: History, node_codes: np.ndarray, node_names: list[str], delay: np.ndarray,
               other: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """p50 / p90 / p99 (ms) and count of the ``other`` arrivals (at a node other than the
    one that made the block), by the receiving node's region (``History.nodes``; a node not listed: "unknown"), the nodes
    given as codes into ``node_names``."""
    if not delay.size:
        return {}
    region_of = {entry["name"]: entry.get("region", UNKNOWN_REGION) for entry in history.nodes}
    names = sorted({region_of.get(name, UNKNOWN_REGION) for name in node_names})
    index = {name: i for i, name in enumerate(names)}
    code_region = np.array([index[region_of.get(name, UNKNOWN_REGION)] for name in node_names], dtype=np.int64)
    region = code_region[node_codes]
    result: dict[str, dict[str, float | int | None]] = {}
    for i, name in enumerate(names):
        values = delay[other & (region == i)]
        if values.size:
            p50, p90, p99 = _ms(values, (50, 90, 99))
            result[name] = {"p50": p50, "p90": p90, "p99": p99, "count": int(values.size)}
    return result


def _ms(values_ns: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
    """Nearest-rank percentiles in ms; nulls for no values."""
    if values_ns.size == 0:
        return [None] * len(qs)
    return [ms(value) for value in percentiles(values_ns, qs)]

