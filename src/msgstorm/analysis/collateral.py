"""Collateral on one chain, positions on the other: liquidations that wait for the relay.

Place in the pipeline: analysis, from the histories alone, for a ``[crosschain]`` run with
``positions = "destination"``. The source runs its market as on one chain: the oracle, the
keepers and the margin engine act there, and a liquidation that commits there is executed in
the source's ``executions`` table at the source's on-chain price. That row is the decision
to close. The position itself lives on the destination: it closes only when that liquidation
message is relayed and commits there (``crosschain_table``'s ``t_dest_commit``), at the
destination's price then. That price is the true price at that time (the ``prices`` table:
one path for both chains, drawn from the seed; the destination has no oracle of its own; a
commit after the path's last step takes its last price). The close applies the reactor's own
rule (``rules.market.execute``: the same penalty and slippage).

The same positions on one chain (the same run, the same seed) close when the source executed
them, by the same rule at the true price then: so the difference between the two is the
relay's wait alone. (The source's own executions, at its on-chain oracle price, are the
market section's numbers; compared with them, the oracle's staleness would count too: in a
falling market a stale on-chain price hides bad debt the true price shows.)

A liquidation the destination never commits (fate ``censored``, ``never_final`` or
``undelivered``) leaves its position open. It is marked to market at the true price at the
market's horizon, as the market analysis marks every account never liquidated, and its
shortfall counts as bad debt. One relayed from a block a reorg took back
(``reverted_on_source``) closes all the same when the destination committed it: the
destination acts on the proof it was given.

The wait is from the source's execution (its commit) to the destination's commit; it is
below 0 for a close relayed on inclusion from a block a reorg took back, which the source
executed only when its canonical chain held it again. The split is the cross-chain split
(``stage_split``: source finality, relay, proof check, destination) of the liquidations that
closed, from the keeper's send.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import (
    message_rows,
    ms,
    nullable_ints,
    percentiles,
    rounded,
    scenario_section,
)
from msgstorm.analysis.crosschain import crosschain_table, stage_split
from msgstorm.analysis.market import executed_liquidations, market_tables
from msgstorm.history.reader import History
from msgstorm.rules.market import equity, execute

__all__ = ["OPEN_FATES", "OPEN_SHOWN", "collateral_summary", "collateral_table"]

# The fates that leave a position open on the destination.
OPEN_FATES = ("censored", "never_final", "undelivered")
# The open accounts summary.json names (the first by account id); the counts hold them all.
OPEN_SHOWN = 20


def _positions_on_destination(history: History) -> bool:
    return bool(scenario_section(history, "crosschain").get("positions") == "destination")


def _true_prices(history: History, instruments: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per instrument: the path's step times and prices over the whole run, in time order."""
    prices = history.table("prices")
    names = np.asarray(prices.column("instrument").to_pylist(), dtype=object)
    t, price = prices.column("t").to_numpy(), prices.column("price").to_numpy()
    out = []
    for name in instruments:
        mine = names == name
        order = np.argsort(t[mine], kind="stable")
        out.append((t[mine][order], price[mine][order]))
    return out


def _price_at(path: tuple[np.ndarray, np.ndarray], t: int) -> float:
    """The path's price in force at ``t`` (its first before the path starts)."""
    times, values = path
    return float(values[max(int(np.searchsorted(times, t, side="right")) - 1, 0)])


def collateral_table(history: History, cross: pa.Table | None = None) -> pa.Table | None:
    """One row per liquidation the source executed, of a run whose positions live on the
    destination (``None`` for any other run): account, source ``msg_id``, its fate across,
    ``t_source`` (the source's execution), ``t_dest_commit`` (null: never), on one chain
    ``one_chain_price`` and ``one_chain_bad_debt`` (the close at the true price at
    ``t_source``), and across the relay ``price`` (the destination's execution, or the
    horizon's mark of an open position), ``bad_debt`` and ``closed``. ``cross``: the run's
    ``crosschain_table`` when the caller has it already."""
    if not _positions_on_destination(history):
        return None
    cross = crosschain_table(history) if cross is None else cross
    tables = market_tables(history)
    if cross is None or tables is None:
        return None
    done = executed_liquidations(history)
    row, found = message_rows(cross.column("src_msg_id").to_numpy(), done.msg_id)
    fates = np.asarray(cross.column("fate").to_pylist(), dtype=object)
    fate = np.where(found, fates[row] if fates.size else "never_final", "never_final")
    dest_commit, reached = nullable_ints(cross.column("t_dest_commit"))
    dest_commit = np.where(reached, dest_commit, -1)
    t_dest = np.where(found, dest_commit[row] if dest_commit.size else -1, -1)
    closed = t_dest >= 0
    market = scenario_section(history, "market")
    paths = _true_prices(history, tables.instruments)
    account = done.account.astype(np.int64)
    instrument = tables.account_instrument[account]
    horizon_price = tables.prices[instrument, -1] if tables.prices.shape[1] else np.full(account.size, np.nan)
    rule = (float(market["liquidation_penalty"]), float(market["slippage_bps"]), float(market["depth"]))
    one_price = np.empty(account.size, dtype=np.float64)
    one_bad = np.empty(account.size, dtype=np.float64)
    price = np.empty(account.size, dtype=np.float64)
    bad_debt = np.empty(account.size, dtype=np.float64)
    # One account at a time: ``execute`` is the reactor's scalar rule, applied as it applies it.
    for k, (who, which) in enumerate(zip(account.tolist(), instrument.tolist(), strict=True)):
        side, size, entry = int(tables.side[who]), float(tables.size[who]), float(tables.entry[who])
        collateral = float(tables.collateral[who])
        one_price[k] = _price_at(paths[which], int(done.t[k]))
        one_bad[k] = execute(side, size, entry, collateral, float(one_price[k]), *rule).bad_debt
        if closed[k]:
            price[k] = _price_at(paths[which], int(t_dest[k]))
            bad_debt[k] = execute(side, size, entry, collateral, float(price[k]), *rule).bad_debt
        else:
            price[k] = float(horizon_price[k])
            bad_debt[k] = max(0.0, -equity(side, size, entry, collateral, float(price[k])))
    return pa.table({
        "account": pa.array(account, type=pa.int64()),
        "msg_id": pa.array(done.msg_id, type=pa.int64()),
        "fate": pa.array(fate.tolist(), type=pa.string()),
        "t_source": pa.array(done.t, type=pa.int64()),
        "t_dest_commit": pa.array(t_dest, type=pa.int64(), mask=~closed),
        "one_chain_price": pa.array(one_price, type=pa.float64()),
        "one_chain_bad_debt": pa.array(one_bad, type=pa.float64()),
        "price": pa.array(price, type=pa.float64()),
        "bad_debt": pa.array(bad_debt, type=pa.float64()),
        "closed": pa.array(closed, type=pa.bool_()),
    })


def collateral_summary(history: History, cross: pa.Table | None) -> dict[str, Any] | None:
    """summary.json's ``collateral``: the liquidations the source executed, how many closed on
    the destination and how many were left open (by fate, the first accounts named), how long
    the close waited after the source's execution and where that time went, and the bad debt
    across the relay against the same positions liquidated on one chain. ``cross``: the
    run's ``crosschain_table`` (None: not a cross-chain run)."""
    if cross is None:
        return None
    table = collateral_table(history, cross)
    if table is None:
        return None
    fate = np.asarray(table.column("fate").to_pylist(), dtype=object)
    closed = table.column("closed").to_numpy(zero_copy_only=False).astype(bool)
    t_source = table.column("t_source").to_numpy()
    t_dest = nullable_ints(table.column("t_dest_commit"))[0]
    # Relayed from a block a reorg took back and not committed on the destination: undelivered.
    left = np.where(fate == "reverted_on_source", "undelivered", fate)
    waits = (t_dest - t_source)[closed]
    wait: dict[str, float | None] = dict.fromkeys(("p50", "max", "mean"))
    if waits.size:
        p50, top = percentiles(waits, (50.0, 100.0))
        wait = {"p50": ms(p50), "max": ms(top), "mean": ms(float(waits.mean()))}
    cross_ids = cross.column("src_msg_id").to_numpy()
    closed_ids = table.column("msg_id").to_numpy()[closed]
    one_bad = table.column("one_chain_bad_debt").to_numpy()
    bad = table.column("bad_debt").to_numpy()
    accounts = table.column("account").to_numpy()
    one_chain, across = float(one_bad.sum()), float(bad.sum())
    return {
        "positions": int(table.num_rows),
        "closed": int(closed.sum()),
        "closed_reverted_on_source": int(np.count_nonzero(closed & (fate == "reverted_on_source"))),
        "open": {name: int(np.count_nonzero(~closed & (left == name))) for name in OPEN_FATES},
        "open_accounts": sorted(int(a) for a in accounts[~closed])[:OPEN_SHOWN],
        "wait_ms": wait,
        "split_ms": stage_split(cross, np.isin(cross_ids, closed_ids)),
        "bad_debt": {"one_chain": rounded(one_chain, 2), "across": rounded(across, 2),
                     "extra": rounded(across - one_chain, 2), "open": rounded(float(bad[~closed].sum()), 2)},
    }
