"""The market reactor's rows for the history, and their flush into its tables.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), mixed into
``MarketReactor``: its handlers append rows to these buffers as they act (a keeper's send a
``triggers`` row, a commit an ``executions`` row, the venue's books ``venue`` rows), and
``_flush`` turns them into columns for the host's history writer (``ReactorHost.append``): at
``finish``, and whenever ``triggers`` or ``executions`` reach ``reactor._FLUSH_ROWS`` rows on
a host whose commits are final (a host that may take commits back keeps every row until
``finish``, since ``reverted`` rewrites them). It also writes the ``oracle`` rows (each
update's message, and the oracle's re-sends), the parts' own rows (``cross_executions``,
``topups``) and the ``marks`` and ``socialised_losses`` tables; and, before the run
(``_write_start``), the ``prices``, ``accounts`` and ``cross_accounts`` tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.market.reactor_state import ReactorState

__all__ = ["HistoryRows"]

# The ``venue`` table's columns, in order.
_VENUE_COLUMNS = ("t", "msg_id", "account", "kind", "amount", "size_after", "collateral_after", "fund_after")


class HistoryRows(ReactorState):
    """The row buffers (``_start_rows``) and their flush (``_flush``)."""

    _losses_once: bool

    def _start_rows(self, losses_once: bool) -> None:
        """Empty buffers. ``losses_once`` (a run without top-ups, whose collateral moves
        between ``venue`` rows without a place in their order): a socialised loss is written
        once, as one ``socialised_losses`` row, and the analysis replays its ``venue`` rows."""
        self._triggers = []
        self._executions = []
        self._venue_rows = []
        # A socialised loss's rows, one per account in profit, as a block of columns: (the
        # number of ``_venue_rows`` before it, t, msg_id, fund_after, and the ``Moves.block``
        # columns account, amount, size_after, collateral_after); ``_venue_columns`` puts
        # the rows and the blocks in order.
        self._venue_blocks = []
        self._losses = []
        self._losses_once = losses_once
        self._venue_written = 0  # the ``venue`` rows flushed so far (a loss's place counts them)
        self._marks = []
        self._oracle_written = 0  # rows of msg_of_update in the history

    def _write_start(self) -> None:
        """The tables known before the run: the price paths, the accounts (and the cross
        accounts)."""
        paths, instruments = self.paths, self.paths.names
        times = paths.times()
        self.host.append("prices", {
            "t": np.tile(times, len(instruments)),
            "instrument": [name for name in instruments for _ in range(len(times))],
            "price": paths.prices.reshape(-1)})
        columns = self.accounts.columns()
        columns["instrument"] = [instruments[i] for i in self.accounts.instrument.tolist()]
        self.host.append("accounts", columns)
        if self.cross is not None:
            self.host.append("cross_accounts", self.cross.start_columns())

    def _venue_columns(self) -> dict[str, Any]:
        """The rows and the blocks in order as one set of ``venue`` columns (numpy, and
        ``kind`` an Arrow string array), both emptied."""
        import pyarrow as pa  # here: a run without a venue loads no Arrow (tests/test_startup.py)

        rows, self._venue_rows = self._venue_rows, []
        blocks, self._venue_blocks = self._venue_blocks, []
        if rows and not blocks:  # rows only (a run that records its socialised losses once): the columns as they are
            by_column = list(zip(*rows, strict=True))
            plain: dict[str, Any] = {name: np.asarray(column, dtype=dtype) for name, column, dtype in zip(
                _VENUE_COLUMNS, by_column, (np.int64, np.int64, np.int64, None, np.float64, np.float64, np.float64,
                                            np.float64), strict=True) if dtype is not None}
            plain["kind"] = pa.array(by_column[3], pa.string())
            return plain
        sizes = np.array([len(block[4]) for block in blocks], dtype=np.int64)
        before = np.array([block[0] for block in blocks], dtype=np.int64)  # rows before each block
        # Where each row and each block goes: past the rows and the blocks before it.
        blocks_before = np.concatenate([[0], np.cumsum(sizes)])
        row_at = np.arange(len(rows), dtype=np.int64)
        row_at += blocks_before[np.searchsorted(before, row_at, side="right")]
        block_at = (before + blocks_before[:-1]).tolist()
        total = len(rows) + int(blocks_before[-1])
        names = ["socialised"]
        code = {"socialised": 0}
        kinds = np.zeros(total, dtype=np.int32)
        columns: dict[str, Any] = {}
        by_name = dict(zip(_VENUE_COLUMNS, zip(*rows, strict=True), strict=True)) if rows else {}
        for name, dtype, at in (("t", np.int64, 1), ("msg_id", np.int64, 2), ("account", np.int64, 4),
                                ("amount", np.float64, 5), ("size_after", np.float64, 6),
                                ("collateral_after", np.float64, 7), ("fund_after", np.float64, 3)):
            column = np.empty(total, dtype=dtype)
            if rows:
                column[row_at] = np.asarray(by_name[name], dtype=dtype)
            for block, start, size in zip(blocks, block_at, sizes.tolist(), strict=True):
                column[start:start + size] = block[at]
            columns[name] = column
        if rows:
            kinds[row_at] = [code.setdefault(kind, len(code)) for kind in by_name["kind"]]
            names = list(code)
        columns["kind"] = pa.DictionaryArray.from_arrays(pa.array(kinds), pa.array(names, pa.string())).cast(
            pa.string())
        return columns

    def _flush(self) -> None:
        host = self.host
        if self._triggers:
            columns = list(zip(*self._triggers, strict=True))
            host.append("triggers", dict(zip(
                ("t", "t_sent", "keeper", "node", "account", "msg_id", "price_msg_id", "price_seen"),
                (list(column) for column in columns), strict=True)))
            self._triggers = []
        if self._executions:
            columns = list(zip(*self._executions, strict=True))
            host.append("executions", dict(zip(
                ("t", "msg_id", "account", "keeper", "outcome", "price", "t_price", "pnl", "penalty", "slippage",
                 "slippage_bps", "collateral_after", "bad_debt"), (list(column) for column in columns), strict=True)))
            self._executions = []
        if self._venue_rows or self._venue_blocks:
            venue = self._venue_columns()
            self._venue_written += len(venue["t"])
            host.append("venue", venue)
        if self._losses:
            host.append("socialised_losses", dict(zip(
                ("t", "msg_id", "account", "instrument", "price", "charged", "total", "accounts", "fund_after",
                 "venue_row"), (list(column) for column in zip(*self._losses, strict=True)), strict=True)))
            self._losses = []
        cross = self.cross.take_rows() if self.cross is not None else None
        if cross is not None:
            host.append("cross_executions", cross)
        if self._marks:
            columns = list(zip(*self._marks, strict=True))
            host.append("marks", dict(zip(("t", "msg_id", "account", "index", "mark"),
                                          (list(column) for column in columns), strict=True)))
            self._marks = []
        topups = self.topups.take_rows() if self.topups is not None else None
        if topups is not None:
            host.append("topups", topups)
        first, end = self._oracle_written, len(self.msg_of_update)
        if end > first:
            names = self.paths.names
            # The true price behind each message and its time (what a byzantine oracle
            # publishes may differ in both; an honest one publishes exactly these).
            instruments, steps = self.updates.instrument[first:end], self.updates.step[first:end]
            self.host.append("oracle", {
                "msg_id": self.msg_of_update[first:end],
                "instrument": [names[i] for i in instruments.tolist()],
                "price": self.paths.prices[instruments, steps], "t_price": steps * np.int64(self.paths.resolution_ns),
                "published": self.updates.price[first:end], "t_published": self.updates.t[first:end]})
            self._oracle_written = end
        if self.resent:  # the oracle's re-sends: the same update, another message
            rows = np.array([row for _, row in self.resent], dtype=np.int64)
            instruments, steps = self.updates.instrument[rows], self.updates.step[rows]
            self.host.append("oracle", {
                "msg_id": [msg_id for msg_id, _ in self.resent],
                "instrument": [self.paths.names[i] for i in instruments.tolist()],
                "price": self.paths.prices[instruments, steps], "t_price": steps * np.int64(self.paths.resolution_ns),
                "published": self.updates.price[rows], "t_published": self.updates.t[rows]})
            self.resent = []
