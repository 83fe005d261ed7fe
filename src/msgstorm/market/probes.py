"""Probe books: copies of the accounts at a grid of leverages, riding along a run.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built when the
scenario has ``[market.probes]`` (``msgstorm safe-leverage`` sets it); it writes the
``probe_executions`` table, from which the analysis (``analysis/probes.py``) gives bad debt
at every leverage of the grid. One run thus answers for every leverage on the same price
path, the same network and the same keepers at each moment (common random numbers by
construction), where a search by whole runs repeats all of that per leverage.

The book at leverage L holds, for every account, a *probe* with the account's instrument,
side, entry and collateral and the size ``L x collateral / entry``, so its lines are those
of ``market/accounts.py`` at L. Probe ``p`` is account ``p mod n`` of the book ``p div n``.
Probes never top up.

The keepers watch them as they watch the accounts: when a price reaches a keeper's node,
every probe it puts past its line (a cursor of its own over the probes' lines, and the
probes whose liquidation found them recovered) that the keeper has no liquidation out for,
is liquidated after a reaction drawn for it, at the keeper's fee (or its fee rule at that
moment), split among a group's keepers as the accounts are (by account), unless liquidated
by then. What the liquidation travels on:

- a share ``traffic_share`` of them are messages of their own, sent as the keeper's: they
  load the network like any liquidation and execute when they commit;
- the others send nothing. Each reaches the sequencer at its send time plus its node's way
  there (``delay``: the median of the newest delays measured from that node, before any the
  shortest path over the mesh) and commits with its *carrier*: the first message, in block
  order, of the first block holding a message the queue policy ranks after it (first come
  first served: received at or after its arrival at a fee at most its; highest fee first: a
  lower fee sequenced after its arrival, or its fee received after it; a policy with a rule
  of its own takes the first). Every message ranked after its own would have been sequenced
  after it, so its own commits no later than the carrier: the delay is a bound from above,
  tight when blocks are full. The probes' liquidations then leave the network as it is: the
  history of a run with probes is the one without them, but this table
  (``tests/test_market_probes.py``). That they load nothing is the approximation: they ride
  the accounts' own liquidations (``msgstorm safe-leverage`` puts the accounts at the
  leverage it decides first, ``sweep/leverage_probes.py``); ``traffic_share = 1`` sends all
  of them (docs/model.md compares the curve with whole runs).

A liquidation that commits (or is carried) executes at the on-chain price then by the
market's one rule (``rules.liquidation_costs``), or, its probe not past its line there, is
recovered and the keeper looks again at its next price; one already executed is a no-op.
With ``[market.liquidation]`` beyond today's (any mechanism whose call reads the account and
the price alone, ``Mechanism.alone``: ``whole``, ``partial``, ``close_factor``), each
liquidation is the venue's own ``call`` (``market/liquidation.py``), in block order, booked by
the book's own ``Venue`` (``market/venue.py``) over the book's probes, as the reactor's over
the accounts (a block's calls of a book many at once, ``calls`` and ``Venue.book_many``, as
far as each touches only its own probe): each book is every account at its leverage, so its
insurance fund, deleveraging and socialised losses are those of a whole run at that leverage.
A call that leaves a probe open, or the books' moving others (``venue.moved_open``), gives them
new lines, which every keeper looks at again at its next price (a lending market's keeper at
once, while the probe stays past it); a call that closes nothing is recovered. Each call is a
row with the probe's size and collateral after it, and at the end a row gives the state of each
probe the books moved by another's call (``finish``); the analysis marks the probes left open
at the horizon from their last row.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from msgstorm.market.accounts import (
    Accounts,
    LineCursor,
    LineIndex,
    line_prices,
    past_line,
    past_lines,
    relined,
)
from msgstorm.market.liquidation import Calls, call, calls, mechanism_of
from msgstorm.market.venue import Venue, moved_open
from msgstorm.rules.market import liquidation_costs
from msgstorm.sampling import sample_array
from msgstorm.scenario.market import KeeperSpec, MarketSpec, ProbeSpec, impact_exponent

__all__ = ["KeeperView", "ProbeBook", "probe_accounts"]

_FLUSH_ROWS = 4096
# How many of a node's newest messages its delay to the sequencer is the median of.
_RECENT = 64


_NONE = np.iinfo(np.int64).max  # no carrier


def _distinct(probe: np.ndarray) -> int:
    """How many of ``probe``'s first entries are each a probe of its own (the calls that can be
    made at once: a probe's second call sees what its first left)."""
    order = np.argsort(probe, kind="stable")
    again = order[1:][probe[order][1:] == probe[order][:-1]]  # each probe's later calls
    return int(again.min()) if len(again) else len(probe)


def _earliest_after(times: np.ndarray, positions: np.ndarray, eligible: np.ndarray, arrive: np.ndarray) -> np.ndarray:
    """For each of ``arrive``: the earliest block position among the ``eligible`` messages
    whose ``times`` are at or after it (``_NONE``: none; a time of -1 is never after)."""
    order = np.argsort(times, kind="stable")
    ranked = times[order]
    earliest = np.minimum.accumulate(np.where(eligible[order], positions[order], _NONE)[::-1])[::-1]
    at = np.searchsorted(ranked, arrive, side="left")
    found = np.full(len(arrive), _NONE, dtype=np.int64)
    inside = at < len(ranked)
    found[inside] = earliest[at[inside]]
    return found


class KeeperView(Protocol):
    """What the probes need of a keeper (``reactor_state.Keeper``)."""

    name: str
    index: int
    member: int
    spec: KeeperSpec
    node: int


def probe_accounts(accounts: Accounts, leverages: Sequence[float], maintenance: float) -> Accounts:
    """The probe books: every account again at each leverage, book by book (probe ``p`` is
    account ``p mod n`` at ``leverages[p div n]``); size ``L x collateral / entry``."""
    books = len(leverages)
    leverage = np.repeat(np.asarray(leverages, dtype=np.float64), len(accounts))
    side = np.tile(accounts.side, books)
    entry = np.tile(accounts.entry, books)
    collateral = np.tile(accounts.collateral, books)
    size = leverage * collateral / entry
    liquidation, bankruptcy = line_prices(side, size, entry, collateral, maintenance)
    return Accounts(np.tile(accounts.instrument, books), side, size, entry, collateral, liquidation, bankruptcy)


@dataclass
class _Pending:
    """Probe liquidations waiting for a carrier at one node, as parallel arrays."""

    probe: np.ndarray  # int64
    keeper: np.ndarray  # int32
    t_send: np.ndarray  # int64
    fee: np.ndarray  # float64 (NaN: a fee-aware keeper's, set once its send time has passed)

    @staticmethod
    def empty() -> _Pending:
        return _Pending(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64),
                        np.empty(0, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.probe)

    def take(self, mask: np.ndarray) -> _Pending:
        return _Pending(self.probe[mask], self.keeper[mask], self.t_send[mask], self.fee[mask])

    @staticmethod
    def join(parts: list[_Pending]) -> _Pending:
        return _Pending(*(np.concatenate([getattr(part, name) for part in parts])
                          for name in ("probe", "keeper", "t_send", "fee")))


class ProbeBook:
    """The probes of one run (module docstring). The reactor calls ``seen`` when one of its
    keepers sees a new price, ``committed`` with every block, after its own accounts, and
    ``flush`` at the end."""

    # A block's calls under a venue's mechanism made many at once where they can be (``_calls``);
    # False: one by one, the same rows (``tests/test_market_probe_calls.py`` compares the two).
    batched = True

    def __init__(self, spec: ProbeSpec, market: MarketSpec, accounts: Accounts, keepers: Sequence[KeeperView],
                 instruments: int, host: Any, seed: np.random.SeedSequence) -> None:
        self.spec = spec
        self.market = market
        self.host = host
        self.accounts_per_book = len(accounts)
        self.probes = probe_accounts(accounts, spec.leverages, market.maintenance_margin)
        count = len(self.probes)
        self.keepers = list(keepers)
        index = LineIndex(self.probes, instruments)
        self.cursors: list[LineCursor] = [index.cursor() for _ in self.keepers]
        draw_seeds = seed.spawn(len(self.keepers) + 1)
        self.reaction_rng = [np.random.default_rng(child) for child in draw_seeds[:len(self.keepers)]]
        self.share_rng = np.random.default_rng(draw_seeds[-1])
        self.pending_of = [np.zeros(count, dtype=bool) for _ in self.keepers]  # a liquidation out, per keeper
        self.retry_of = [np.zeros(count, dtype=bool) for _ in self.keepers]  # recovered at execution
        self.retries = [0] * len(self.keepers)
        self.liquidated = np.zeros(count, dtype=bool)
        self.waiting: dict[int, list[_Pending]] = {}  # node -> waiting for a carrier
        self.own: dict[int, list[tuple[int, int]]] = {}  # msg_id of a probe's own message -> (probe, keeper)
        self.fee_ceiling: dict[int, float] = {}  # node -> the highest fee a liquidation waiting there may pay
        self.earliest: dict[int, int] = {}  # node -> at most the earliest send time of those waiting there
        self.recent: dict[int, np.ndarray] = {}  # node -> its newest messages' delays to the sequencer
        self.fee_t: list[int] = []  # when the base fee was seen to change (at a block or a price seen)
        self.fee_base: list[float] = []
        self._instrument = self.probes.instrument
        # The venue's mechanism, and each book's own books (an insurance fund, its cover): a
        # Venue over the book's slice of the probes, as the reactor's over the accounts. Today's
        # whole close at the index without them is executed for many probes at once.
        self.rule = mechanism_of(market)
        self.venues: list[Venue] | None = None
        if market.liquidation is not None and not market.liquidation.keeps_today():
            n, side = self.accounts_per_book, accounts.side.tolist()
            entry, instrument = accounts.entry.tolist(), accounts.instrument.tolist()
            self.venues = [Venue(market.liquidation, side, self.probes.size[at:at + n], entry,
                                 self.probes.collateral[at:at + n], instrument,
                                 self.liquidated[at:at + n])
                           for at in range(0, count, n)]
        self._whole = self.venues is None
        # Probes a book's venue moved by another's call (deleveraged, charged), and those a call
        # of their own closed whole: the first get a row of their state at the end.
        self._moved = np.zeros(count, dtype=bool)
        self._called_whole = np.zeros(count, dtype=bool)
        self._book_leverage = np.asarray(spec.leverages, dtype=np.float64)
        self._rows: list[tuple[np.ndarray, ...]] = []
        self._row_count = 0

    # --- a keeper sees a price ---------------------------------------------------------------

    def seen(self, t: int, keeper: int, instrument: int, price: float) -> None:
        """``keeper`` saw a new ``price`` of ``instrument`` at ``t``: a liquidation for each
        probe it finds past its line (module docstring)."""
        view = self.keepers[keeper]
        self._note_base_fee(t)
        found = self.cursors[keeper].past_array(instrument, price)
        if not self._whole and len(found):  # a line a call moved: looked at again at the next price
            moved = ~past_lines(self.probes.side[found], self.probes.liquidation[found], price)
            moved &= ~self.liquidated[found] & ~self.pending_of[keeper][found]
            self._retry(keeper, found[moved])
            found = found[~moved]
        if self.retries[keeper]:
            retry = self.retry_of[keeper]
            probes = self.probes
            again = np.flatnonzero(retry)  # those it looks at again, then those past their line
            again = again[(self._instrument[again] == instrument)
                          & past_lines(probes.side[again], probes.liquidation[again], price)]
            retry[again] = False
            self.retries[keeper] -= len(again)
            found = np.concatenate([found, again])
        if not len(found):
            return
        pending = self.pending_of[keeper]
        found = found[~self.liquidated[found] & ~pending[found]]
        if not view.spec.race:
            found = found[(found % self.accounts_per_book) % view.spec.count == view.member]
        if not len(found):
            return
        pending[found] = True
        t_send = t + np.rint(sample_array(view.spec.reaction, self.reaction_rng[keeper], len(found))).astype(np.int64)
        share = self.spec.traffic_share
        own = (self.share_rng.random(len(found)) < share) if share > 0 else np.zeros(len(found), dtype=bool)
        for probe, at in zip(found[own].tolist(), t_send[own].tolist(), strict=True):
            self.host.schedule_send(at, self._send_own, probe, keeper)
        rest = ~own
        if rest.any():
            spec = view.spec
            fee = np.full(int(rest.sum()), np.nan if spec.fee_aware else spec.fee, dtype=np.float64)
            node = view.node
            self.waiting.setdefault(node, []).append(
                _Pending(found[rest], np.full(len(fee), keeper, dtype=np.int32), t_send[rest], fee))
            first = int(t_send[rest].min())
            self.fee_ceiling[node] = max(self.fee_ceiling.get(node, -np.inf), max([spec.fee_cap, *(step.cap for step in spec.cap_raised)]) if spec.fee_aware else spec.fee)
            self.earliest[node] = min(self.earliest.get(node, first), first)

    def _note_base_fee(self, t: int) -> None:
        base = self.host.base_fee()
        if base is not None and (not self.fee_base or self.fee_base[-1] != base):
            self.fee_t.append(t)
            self.fee_base.append(base)

    def _fee_at(self, spec: KeeperSpec, t: int) -> float:
        """A keeper's fee for a liquidation sent at ``t``: fixed, or its rule at the base fee
        in force then (as the market last saw it at or before ``t``: at a block or a price)."""
        if not self.fee_base:
            return spec.fee_at(None)
        return spec.fee_at(self.fee_base[max(0, bisect.bisect_right(self.fee_t, t) - 1)], t)

    def _send_own(self, t: int, probe: int, keeper: int, _c: int, _d: int) -> None:
        view = self.keepers[keeper]
        if self.liquidated[probe]:  # it reads the chain before it sends
            self.pending_of[keeper][probe] = False
            return
        spec = view.spec
        fee = spec.fee_at(self.host.base_fee(), t)
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", view.node,
                                probe % self.accounts_per_book, spec.size, fee)
        self.own.setdefault(msg_id, []).append((probe, keeper))

    # --- a block commits ----------------------------------------------------------------------

    def committed(self, t: int, msg_ids: list[int], before: list[float],
                  changes: list[tuple[int, int, float]]) -> None:
        """The block committed at ``t``: the probes' own messages in it execute, and so do the
        waiting liquidations it carries (module docstring), each at the on-chain price where
        its message stands in the block: ``before`` the block, then ``changes`` ((position,
        instrument, price) of each price it committed, in order)."""
        self._note_base_fee(t)
        if not msg_ids:
            return
        if self.own:
            for position, msg_id in enumerate(msg_ids):
                for probe, keeper in self.own.pop(msg_id, ()):
                    self._execute(t, np.array([probe]), np.array([keeper], dtype=np.int32), np.array([msg_id]),
                                  np.array([position]), before, changes)
        if not self.waiting:
            return
        origin, sent, received, sequenced, fees = self.host.block_arrivals()
        self._measure(origin, received - sent)
        positions = np.arange(len(received))
        by_fee = self.host.order_key() == "fee"
        lowest_fee = float(fees.min()) if len(fees) else np.inf
        latest = int(max(received.max(), sequenced.max())) if len(received) else -1
        for node in list(self.waiting):
            # Cheap bounds first: no message of the block can carry a liquidation waiting here
            # when every fee is above the highest it may pay, or every message was received and
            # sequenced before the earliest arrival (most blocks of a congested run).
            if lowest_fee > self.fee_ceiling[node] or latest < self.earliest[node] + self.delay(node):
                continue
            waiting = self._gathered(node, t)
            if not len(waiting):
                continue
            arrive = waiting.t_send + self.delay(node)
            carrier = np.full(len(waiting), _NONE, dtype=np.int64)
            for limit in np.unique(waiting.fee[~np.isnan(waiting.fee)]).tolist():  # each keeper's fee, or its rule's
                mine = np.flatnonzero(waiting.fee == limit)
                if by_fee:
                    # Ranked after it: a lower fee sequenced after it arrived, or its fee received after it.
                    found = np.minimum(_earliest_after(sequenced, positions, fees < limit, arrive[mine]),
                                       _earliest_after(received, positions, fees == limit, arrive[mine]))
                else:
                    found = _earliest_after(received, positions, fees <= limit, arrive[mine])
                carrier[mine] = found
            carried = carrier < _NONE
            if not carried.any():
                continue
            chosen = waiting.take(carried)
            self.waiting[node] = [waiting.take(~carried)]
            where = carrier[carried]
            self._execute(t, chosen.probe, chosen.keeper, np.asarray(msg_ids, dtype=np.int64)[where], where,
                          before, changes)

    def _measure(self, origin: np.ndarray, delay: np.ndarray) -> None:
        """Keep the newest ``_RECENT`` delays to the sequencer of each keeper's node."""
        for node in {view.node for view in self.keepers}:
            mine = delay[(origin == node) & (delay >= 0)]
            if len(mine):
                kept = self.recent.get(node)
                self.recent[node] = (mine if kept is None else np.concatenate([kept, mine]))[-_RECENT:]

    def delay(self, node: int) -> int:
        """A message's way from ``node`` to the sequencer now: the median of the newest
        ``_RECENT`` the run measured from there; before any, the shortest path over the mesh's
        base latencies (``host.path_delay``)."""
        kept = self.recent.get(node)
        if kept is not None:
            return int(np.median(kept))
        return int(self.host.path_delay(node))

    def _gathered(self, node: int, t: int) -> _Pending:
        """The liquidations waiting at ``node`` in one set, without those whose probe is
        executed, fee-aware fees set for those sent by ``t``."""
        parts = self.waiting[node]
        waiting = parts[0] if len(parts) == 1 else _Pending.join(parts)
        done = self.liquidated[waiting.probe]
        if done.any():
            for probe, keeper in zip(waiting.probe[done].tolist(), waiting.keeper[done].tolist(), strict=True):
                self.pending_of[keeper][probe] = False
            waiting = waiting.take(~done)
        unset = np.flatnonzero(np.isnan(waiting.fee) & (waiting.t_send <= t))
        for at in unset.tolist():
            waiting.fee[at] = self._fee_at(self.keepers[int(waiting.keeper[at])].spec, int(waiting.t_send[at]))
        self.waiting[node] = [waiting]
        if len(waiting):
            self.earliest[node] = int(waiting.t_send.min())
        return waiting

    def _execute(self, t: int, probe: np.ndarray, keeper: np.ndarray, carrier: np.ndarray, position: np.ndarray,
                 before: list[float], changes: list[tuple[int, int, float]]) -> None:
        """Liquidations of ``probe`` by ``keeper`` committed at ``t`` with ``carrier`` (the
        message, at ``position`` in the block): executed at the on-chain price there,
        recovered, or no-ops (the probe done already, or twice in this block: the one
        earliest in the block executes)."""
        for one, who in zip(probe.tolist(), keeper.tolist(), strict=True):
            self.pending_of[who][one] = False
        order = np.lexsort((position, probe))
        probe, keeper, carrier, position = probe[order], keeper[order], carrier[order], position[order]
        once = np.ones(len(probe), dtype=bool)
        once[1:] = probe[1:] != probe[:-1]
        keep = (once | (not self._whole)) & ~self.liquidated[probe]
        probe, keeper, carrier, position = probe[keep], keeper[keep], carrier[keep], position[keep]
        if not len(probe):
            return
        instrument = self._instrument[probe]
        price = np.asarray(before, dtype=np.float64)[instrument]
        for at, which, new in changes:  # in block order: the last before each message holds
            price[(instrument == which) & (position > at)] = new
        if not self._whole:
            self._calls(t, probe, keeper, carrier, position, price)
            return
        probes = self.probes
        past = past_lines(probes.side[probe], probes.liquidation[probe], price)
        for one, who in zip(probe[~past].tolist(), keeper[~past].tolist(), strict=True):
            self._retry(who, np.array([one]))
        probe, keeper, carrier, price = probe[past], keeper[past], carrier[past], price[past]
        if not len(probe):
            return
        market = self.market
        _, _, _, after = liquidation_costs(probes.side[probe].astype(np.float64), probes.size[probe],
                                           probes.entry[probe], probes.collateral[probe], price,
                                           market.liquidation_penalty, market.slippage_bps, market.depth,
                                           impact_exponent(market))
        self.liquidated[probe] = True
        book = probe // self.accounts_per_book
        self._rows.append((np.full(len(probe), t, dtype=np.int64), probe, probe % self.accounts_per_book,
                           self._book_leverage[book], keeper, carrier, price,
                           np.maximum(0.0, -after), np.zeros(len(probe)), after))
        self._row_count += len(probe)
        if self._row_count >= _FLUSH_ROWS:
            self.flush()

    def _retry(self, keeper: int, probes: np.ndarray) -> None:
        """``keeper`` looks at ``probes`` again at its next price (``seen``)."""
        retry = self.retry_of[keeper]
        fresh = probes[~retry[probes]]
        retry[fresh] = True
        self.retries[keeper] += len(np.unique(fresh))

    def _retry_one(self, keeper: int, probe: int) -> None:
        """``_retry`` of one probe (a call's own: numpy's cost on one element outweighs it)."""
        retry = self.retry_of[keeper]
        if not retry[probe]:
            retry[probe] = True
            self.retries[keeper] += 1

    def _calls(self, t: int, probe: np.ndarray, keeper: np.ndarray, carrier: np.ndarray,
               position: np.ndarray, price: np.ndarray) -> None:
        """The liquidations of a block under a mechanism that may leave a position open, in
        block order (a second call in a block sees what the first left): each the venue's
        ``call``, as the reactor's ``_call`` makes it (module docstring).

        A book's calls touch only its own probes, so each book's are made apart, many at once
        (``_book_calls``) where nothing but the call's own probe moves, and the rows put back in
        block order: the same rows as one call after another. A mechanism whose keeper calls
        again at once (``repeats``) looks at every probe between two calls (``seen``), so its
        calls are made one by one (``_call_one``)."""
        assert self.venues is not None
        order = np.lexsort((probe, position))
        probe, keeper, carrier, price = probe[order], keeper[order], carrier[order], price[order]
        chunks: list[tuple[np.ndarray, ...]] = []
        if self.rule.repeats or not self.batched:
            lists = (probe.tolist(), keeper.tolist(), carrier.tolist(), price.tolist())
            made = (self._call_one(t, *one) for one in zip(*lists, strict=True))
            rows = [(index, *row) for index, row in enumerate(made) if row is not None]
            if rows:
                chunks.append(tuple(np.asarray(column) for column in zip(*rows, strict=True)))
        else:
            book = probe // self.accounts_per_book
            for number in np.unique(book).tolist():
                mine = np.flatnonzero(book == number)
                self._book_calls(t, number, mine, probe[mine], keeper[mine], carrier[mine], price[mine],
                                 chunks)
        if chunks:
            index, *columns = (np.concatenate(column) for column in zip(*chunks, strict=True))
            in_order = np.argsort(index, kind="stable")
            self._call_rows(t, *(column[in_order] for column in columns))

    def _book_calls(self, t: int, number: int, index: np.ndarray, probe: np.ndarray,
                    keeper: np.ndarray, carrier: np.ndarray, price: np.ndarray,
                    chunks: list[tuple[np.ndarray, ...]]) -> None:
        """Book ``number``'s calls of a block, in block order (``index`` in the block's): as many
        at once as touch only their own probe, each probe once (``_distinct``); where the fund
        cannot cover a shortfall (its cover moves others) that call alone, then the rest again.
        Rows (index, probe, keeper, carrier, price, bad debt, size after, collateral after) into
        ``chunks``."""
        assert self.venues is not None
        venue, probes, start = self.venues[number], self.probes, 0
        base = number * self.accounts_per_book
        while start < len(probe):
            end = start + _distinct(probe[start:])
            one, who, at = probe[start:end], keeper[start:end], price[start:end]
            live = ~self.liquidated[one]
            past = live & past_lines(probes.side[one], probes.liquidation[one], at)
            called = np.flatnonzero(past)
            each = one[called]
            done = calls(self.rule, probes.side[each], probes.size[each], probes.entry[each],
                         probes.collateral[each], at[called])
            material = done.closed > 0
            made = called[material]
            done = Calls(*(field[material] for field in done))
            count, bad = venue.book_many(one[made] - base, done)
            every = count == len(made)
            stop = len(one) if every else int(made[count])  # the first call booked alone
            recovered = (live & ~past)
            recovered[called[~material]] = True
            recovered[stop:] = False
            # Nothing material to close, or not past its line: looked at again.
            for watcher in np.unique(who[recovered]).tolist():
                self._retry(watcher, one[recovered & (who == watcher)])
            made = made[:count]
            whole = done.whole[:count]
            if count:
                self._called_whole[one[made]] = whole
                left_open = one[made[~whole]]  # a partial close: a new line, every keeper looks at
                relined(probes.side, probes.size, probes.entry, probes.collateral,
                        self.market.maintenance_margin, left_open, probes.liquidation,
                        probes.bankruptcy)
                for watcher in range(len(self.keepers)):
                    self._retry(watcher, left_open)
                chunks.append((index[start:end][made], one[made], who[made],
                               carrier[start:end][made], at[made], np.where(whole, bad, 0.0),
                               done.size_after[:count], done.collateral_after[:count]))
            if every:
                start = end
                continue
            start += stop  # the call the fund could not cover, alone, then the rest again
            row = self._call_one(t, int(probe[start]), int(keeper[start]), int(carrier[start]),
                                 float(price[start]))
            if row is not None:
                chunks.append(tuple(np.array([value]) for value in (index[start], *row)))
            start += 1

    def _call_one(self, t: int, one: int, who: int, msg_id: int, at: float,
                  ) -> tuple[int, int, int, float, float, float, float] | None:
        """One liquidation call of ``one`` by ``who``, carried by ``msg_id``, at ``at``: its row
        (probe, keeper, carrier, price, bad debt, size after, collateral after), or None when it
        is a no-op or recovered."""
        assert self.venues is not None
        probes, maintenance = self.probes, self.market.maintenance_margin
        side, entry = int(probes.side[one]), float(probes.entry[one])
        if self.liquidated[one]:
            return None  # closed whole earlier in this block
        if not past_line(side, float(probes.liquidation[one]), at):
            self._retry_one(who, one)
            return None
        done = call(self.rule, side, float(probes.size[one]), entry, float(probes.collateral[one]),
                    at)
        if done.closed <= 0:
            self._retry_one(who, one)  # nothing material to close: recovered
            return None
        book, local = divmod(one, self.accounts_per_book)
        venue = self.venues[book]
        moves, bad = venue.book(local, done)  # the book's own fund and cover, as the reactor's
        self._called_whole[one] = done.whole
        touched = moved_open(moves, local, venue.closed)
        if len(touched) == 1:  # most often its own partial close: in plain ints
            moved_one = book * self.accounts_per_book + int(touched[0])
            relined(probes.side, probes.size, probes.entry, probes.collateral, maintenance,
                    [moved_one], probes.liquidation, probes.bankruptcy)
            for watcher in range(len(self.keepers)):  # every keeper looks at it again
                self._retry_one(watcher, moved_one)
            self._moved[moved_one] |= moved_one != one
        elif len(touched):  # deleveraging or a socialised charge moved them
            moved = book * self.accounts_per_book + np.asarray(touched, dtype=np.int64)
            relined(probes.side, probes.size, probes.entry, probes.collateral, maintenance,
                    moved, probes.liquidation, probes.bankruptcy)
            for watcher in range(len(self.keepers)):  # every keeper looks at them again
                self._retry(watcher, moved)
            self._moved[moved[moved != one]] = True
        # A lending market's keeper calls again while the probe stays past its line.
        if (not done.whole and self.rule.repeats
                and past_line(side, float(probes.liquidation[one]), at)):
            self.seen(t, who, int(self._instrument[one]), at)
        return (one, who, msg_id, at, bad if done.whole else 0.0, done.size_after,
                done.collateral_after)

    def _call_rows(self, t: int, probe: np.ndarray, who: np.ndarray, msg_id: np.ndarray,
                   at: np.ndarray, bad: np.ndarray, size_after: np.ndarray,
                   collateral_after: np.ndarray) -> None:
        """``probe_executions`` rows of a block's calls, in block order."""
        probe = probe.astype(np.int64)
        book = probe // self.accounts_per_book
        self._rows.append((np.full(len(probe), t, dtype=np.int64), probe,
                           probe % self.accounts_per_book, self._book_leverage[book],
                           who.astype(np.int32), msg_id.astype(np.int64), at.astype(np.float64),
                           bad.astype(np.float64), size_after.astype(np.float64),
                           collateral_after.astype(np.float64)))
        self._row_count += len(probe)
        if self._row_count >= _FLUSH_ROWS:
            self.flush()

    def finish(self, t_end: int) -> None:
        """The end of the run: a row of the state of every probe a book's venue moved by another's
        call (deleveraged, charged a socialised loss) that no call of its own closed whole
        (keeper "", carrier -1, price NaN), for the analysis to mark; then every row out."""
        moved = np.flatnonzero(self._moved & ~self._called_whole)
        if len(moved):
            n = self.accounts_per_book
            self._rows.append((np.full(len(moved), t_end, dtype=np.int64), moved, moved % n,
                               self._book_leverage[moved // n],
                               np.full(len(moved), -1, dtype=np.int32),
                               np.full(len(moved), -1, dtype=np.int64), np.full(len(moved), np.nan),
                               np.zeros(len(moved)), self.probes.size[moved].copy(),
                               self.probes.collateral[moved].copy()))
        self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        t, probe, account, leverage, keeper, carrier, price, bad, size_after, collateral_after = (
            np.concatenate(column) for column in zip(*self._rows, strict=True))
        # Keeper -1: a row of the end (``finish``).
        names = [*(view.name for view in self.keepers), ""]
        self.host.append("probe_executions", {
            "t": t, "probe": probe, "account": account, "leverage": leverage,
            "keeper": [names[i] for i in keeper.tolist()], "carrier_msg_id": carrier, "price": price,
            "bad_debt": bad, "size_after": size_after, "collateral_after": collateral_after})
        self._rows = []
        self._row_count = 0
