"""Delivery checkers, Jepsen style: properties every correct history has.

Place in the pipeline: run on the history after the metrics; each checker reads only the
history and answers a ``Verdict`` that is "valid", "invalid" or "unknown". A checker that
raises becomes "unknown" with the error text (``run_checkers``), so a checker bug never
crashes a run. A history without messages is vacuously valid.

Checkers, registered by name in ``CHECKERS`` (``scenario/registry.py``; a new one is one
function decorated with ``@CHECKERS.register("name")``):

- ``conservation``: every message has exactly one row (msg_ids unique), its status is one of
  ``STATUSES``, and every delivery names a message that exists.
- ``ordering``: seq_no and t_sequenced are set together; seq_nos are unique and increase with
  t_sequenced (sorted by seq_no, t_sequenced never decreases).
- ``committed-implies-sequenced``: a committed message has t_sequenced, seq_no and
  t_committed, and was committed no earlier than it was sequenced.
- ``stage-order``: the stage times a message reached never go backwards (t_intended <=
  t_sent <= t_received <= t_dequeued <= t_sequenced <= t_committed, skipping nulls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from msgstorm.analysis._common import I64, nullable_ints
from msgstorm.history.reader import History
from msgstorm.history.schema import STATUSES
from msgstorm.scenario.registry import CHECKERS

__all__ = [
    "CHECKERS",
    "Checker",
    "Verdict",
    "check_committed_sequenced",
    "check_conservation",
    "check_ordering",
    "check_stage_order",
    "run_checkers",
]

Status = Literal["valid", "invalid", "unknown"]
_EXAMPLES = 5


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: ``status`` is "valid", "invalid" or "unknown"; ``detail`` says why."""

    name: str
    status: Status
    detail: str


class Checker(Protocol):
    """A property of the history: reads only the history, answers a ``Verdict``."""

    def __call__(self, history: History) -> Verdict: ...


def _examples(values: I64, total: int | None = None) -> str:
    """The first few of ``values``, and how many more there are (of ``total``, when only
    the first few were kept)."""
    count = len(values) if total is None else total
    shown = ", ".join(str(v) for v in values[:_EXAMPLES].tolist())
    more = f" (+{count - _EXAMPLES} more)" if count > _EXAMPLES else ""
    return shown + more


def _ids(history: History, table: str = "messages") -> I64:
    return history.ints(table, "msg_id")[0]


def _nullable(history: History, column: str) -> tuple[I64, npt.NDArray[np.bool_]]:
    """A column as read-only (values, present), shared with the other metrics."""
    return history.ints("messages", column)


def _present(history: History, column: str) -> npt.NDArray[np.bool_]:
    """Whether each message has ``column``, read a Parquet part at a time: only the mask is
    made, not the column's values beside it (a column of ten million messages is 80 MB)."""
    masks = [nullable_ints(part.column(column))[1] for part in history.parts("messages", [column])]
    return np.concatenate(masks) if masks else np.zeros(0, dtype=np.bool_)


@CHECKERS.register("conservation")
def check_conservation(history: History) -> Verdict:
    name = "conservation"
    ids = _ids(history)
    count = int(ids.size)
    problems = []
    low, top = (int(ids.min()), int(ids.max())) if count else (0, -1)
    dense = count > 0 and low >= 0 and top < 2 * count + 1024
    if dense and bool(np.all(ids[1:] > ids[:-1])):
        # Rows in msg_id order (a live run writes them so): none repeats, and a byte an id
        # says which exist (a count an id would be eight).
        duplicated = np.zeros(0, dtype=np.int64)
        present = np.zeros(top + 1, dtype=np.bool_)
        present[ids] = True
        del ids
    elif dense:
        # msg_ids are dense integers (the contract): count each id in place, no sort.
        uses = np.bincount(ids, minlength=top + 1)
        del ids
        duplicated = np.flatnonzero(uses > 1)
        present = uses > 0
        del uses
    else:
        ids = np.sort(ids)
        repeated = ids[1:] == ids[:-1]
        duplicated = np.unique(ids[1:][repeated])
        del repeated
    if duplicated.size:
        problems.append(
            f"{duplicated.size} msg_ids have more than one row: {_examples(duplicated)}"
        )
    codes, names = history.codes("messages", "status")
    unknown = [index for index, status in enumerate(names) if status not in STATUSES]
    if unknown:
        bad = np.isin(codes, unknown)
        statuses = sorted(names[index] for index in unknown)
        problems.append(f"{int(bad.sum())} messages have a status outside {STATUSES}: {statuses}")
    del codes
    delivered = _ids(history, "deliveries")
    if dense:
        inside = (delivered >= 0) & (delivered < present.size)
        known = np.zeros(delivered.size, dtype=np.bool_)
        known[inside] = present[delivered[inside]]
        orphans = np.unique(delivered[~known])
    elif count:
        delivered = np.unique(delivered)
        position = np.minimum(np.searchsorted(ids, delivered), count - 1)
        orphans = delivered[ids[position] != delivered]
    else:
        orphans = np.unique(delivered)
    if orphans.size:
        problems.append(
            f"{orphans.size} delivered msg_ids have no message row: {_examples(orphans)}"
        )
    if problems:
        return Verdict(name, "invalid", "; ".join(problems))
    return Verdict(name, "valid", f"{count} messages, one row and one status each")


def _producers_across_nodes(history: History) -> bool:
    """Blocks came from producers across the nodes (``[blocks.producers]``): each branch is
    its own order, so a message has no seq_no (``sim/forks.py``); the chains' agreement is
    the safety checker's (``analysis/safety.py``)."""
    return bool(history.table("blocks").num_rows > 0)


@CHECKERS.register("ordering")
def check_ordering(history: History) -> Verdict:
    name = "ordering"
    if _producers_across_nodes(history):
        return Verdict(name, "valid", "blocks from producers across the nodes: no one sequence to check "
                                      "(the chains' agreement is the safety check's)")
    seq_no, has_seq = _nullable(history, "seq_no")
    has_t = _present(history, "t_sequenced")
    problems = []
    half = has_seq != has_t
    if half.any():
        ids = _ids(history)
        problems.append(
            f"{int(half.sum())} messages have only one of seq_no/t_sequenced: {_examples(ids[half])}"
        )
    both = has_seq & has_t
    del half, has_seq, has_t
    count = int(both.sum())
    if count == both.size and bool(np.all(seq_no[1:] > seq_no[:-1])):
        # Every message sequenced and its rows already in seq_no order (a one-node run
        # writes them so): nothing to place or sort.
        del seq_no, both
        return _in_sequence_order(history, name, problems, count, None)
    seq = seq_no[both]
    del seq_no
    top = int(seq.max()) if seq.size else -1
    dense, repeated = False, np.zeros(0, dtype=np.int64)
    if seq.size and int(seq.min()) >= 0 and top < 2 * seq.size + 1024:
        # Sequence numbers are dense: place each message's row at its seq_no instead of
        # sorting (row numbers as int32 while they fit); every seq_no used once exactly
        # when as many places are taken as there are messages.
        width = np.int32 if both.size < 2**31 else np.int64
        row_at: npt.NDArray[np.signedinteger[Any]] = np.full(top + 1, -1, dtype=width)
        row_at[seq] = np.flatnonzero(both).astype(width)
        taken = row_at >= 0
        dense = int(taken.sum()) == seq.size
        if dense:
            del seq, both
            order = row_at[taken]  # rows of the sequenced, in seq_no order
        del row_at, taken
    if not dense:
        rows = np.flatnonzero(both)
        order = rows[np.argsort(seq, kind="stable")]
        sorted_seq = seq[np.argsort(seq, kind="stable")]
        repeated = np.unique(sorted_seq[1:][sorted_seq[1:] == sorted_seq[:-1]])
        del rows, seq, sorted_seq, both
    if repeated.size:
        problems.append(f"{repeated.size} seq_nos are used more than once: {_examples(repeated)}")
    return _in_sequence_order(history, name, problems, count, order)


def _in_sequence_order(history: History, name: str, problems: list[str], count: int,
                       order: npt.NDArray[np.signedinteger[Any]] | None) -> Verdict:
    """The ordering verdict: ``order`` lists the sequenced rows by seq_no (None: every row,
    in the table's order), and their t_sequenced must not go backwards."""
    t = _nullable(history, "t_sequenced")[0]  # read now, once the sort's arrays are gone
    if order is not None:
        t = t[order]
    backwards = np.flatnonzero(t[1:] < t[:-1]) + 1
    del t
    if backwards.size:
        ids = _ids(history)
        rows = backwards if order is None else order[backwards]
        problems.append(
            f"{backwards.size} messages were sequenced earlier than a lower seq_no: "
            f"msg_ids {_examples(ids[rows])}"
        )
    if problems:
        return Verdict(name, "invalid", "; ".join(problems))
    return Verdict(name, "valid", f"{count} sequenced messages in seq_no order")


@CHECKERS.register("committed-implies-sequenced")
def check_committed_sequenced(history: History) -> Verdict:
    name = "committed-implies-sequenced"
    codes, names = history.codes("messages", "status")
    committed = codes == names.index("committed") if "committed" in names else np.zeros(codes.size, dtype=np.bool_)
    del codes
    across = _producers_across_nodes(history)  # no seq_no there: inclusion is the sequencing
    missing = np.zeros(committed.size, dtype=np.bool_)
    early = np.zeros(committed.size, dtype=np.bool_)
    at = 0
    # A row at a time is all it needs: a Parquet part's columns at a time, not the run's.
    for part in history.parts("messages", ["t_sequenced", "seq_no", "t_committed"]):
        rows = slice(at, at + part.num_rows)
        at += part.num_rows
        t_seq, has_t_seq = nullable_ints(part.column("t_sequenced"))
        has_seq = np.ones(part.num_rows, dtype=np.bool_) if across else nullable_ints(part.column("seq_no"))[1]
        t_commit, has_commit = nullable_ints(part.column("t_committed"))
        missing[rows] = committed[rows] & ~(has_seq & has_t_seq & has_commit)
        early[rows] = committed[rows] & has_t_seq & has_commit & (t_commit < t_seq)
    problems = []
    if missing.any() or early.any():
        ids = _ids(history)
        if missing.any():
            problems.append(
                f"{int(missing.sum())} committed messages lack seq_no, t_sequenced or t_committed: "
                f"{_examples(ids[missing])}"
            )
        if early.any():
            problems.append(
                f"{int(early.sum())} committed before being sequenced: {_examples(ids[early])}"
            )
    if problems:
        return Verdict(name, "invalid", "; ".join(problems))
    return Verdict(name, "valid", f"{int(committed.sum())} committed messages, all sequenced first")


_STAGE_COLUMNS = ("t_sent", "t_received", "t_dequeued", "t_sequenced", "t_committed")


@CHECKERS.register("stage-order")
def check_stage_order(history: History) -> Verdict:
    name = "stage-order"
    # A row at a time is all it needs: one pass over the Parquet parts holds one part's
    # columns, never a column of the run (three of them were the analysis' peak at millions
    # of messages).
    count, rows, examples = 0, 0, np.zeros(0, dtype=np.int64)
    for part in history.parts("messages", ["msg_id", "t_intended", *_STAGE_COLUMNS]):
        previous = nullable_ints(part.column("t_intended"))[0]
        bad = np.zeros(part.num_rows, dtype=np.bool_)
        for column in _STAGE_COLUMNS:
            values, present = nullable_ints(part.column(column))
            bad |= present & (values < previous)
            previous = np.where(present, values, previous)
        rows += part.num_rows
        found = int(bad.sum())
        if found and examples.size < _EXAMPLES:
            ids = nullable_ints(part.column("msg_id"))[0][bad]
            examples = np.concatenate([examples, ids[:_EXAMPLES - examples.size]])
        count += found
    if count:
        return Verdict(
            name,
            "invalid",
            f"{count} messages have a stage time earlier than the stage before it: "
            f"{_examples(examples, count)}",
        )
    return Verdict(name, "valid", f"{rows} messages with stage times in order")


def run_checkers(history: History, checkers: Mapping[str, Checker] = CHECKERS) -> list[Verdict]:
    """Run each checker (default: every registered one, built-ins first); an exception
    becomes an "unknown" verdict naming the error."""
    verdicts = []
    for name, checker in checkers.items():
        try:
            verdict = checker(history)
        except Exception as error:  # noqa: BLE001 - a checker must never crash a run (DESIGN.md)
            verdict = Verdict(name, "unknown", f"checker raised {type(error).__name__}: {error}")
        verdicts.append(verdict)
    return verdicts
