"""Delivery checkers, Jepsen style: properties every correct history has.

Place in the pipeline: run on the history after the metrics; each checker reads only the
history and answers a ``Verdict`` that is "valid", "invalid" or "unknown". A checker that
raises becomes "unknown" with the error text (``run_checkers``), so a checker bug never
crashes a run. A history without messages is vacuously valid.

Checkers (``CHECKERS``, by name):

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.analysis._common import I64, nullable_ints
from msgstorm.history.reader import History
from msgstorm.history.schema import STATUSES

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


Checker = Callable[[History], Verdict]


def _examples(values: I64) -> str:
    shown = ", ".join(str(v) for v in values[:_EXAMPLES].tolist())
    more = f" (+{len(values) - _EXAMPLES} more)" if len(values) > _EXAMPLES else ""
    return shown + more


def _ids(table: pa.Table) -> I64:
    return np.asarray(table.column("msg_id").to_numpy(), dtype=np.int64)


def check_conservation(history: History) -> Verdict:
    name = "conservation"
    messages = history.messages
    ids = _ids(messages)
    problems = []
    unique, counts = np.unique(ids, return_counts=True)
    duplicated = unique[counts > 1]
    if duplicated.size:
        problems.append(
            f"{duplicated.size} msg_ids have more than one row: {_examples(duplicated)}"
        )
    allowed = pc.is_in(messages.column("status"), value_set=pa.array(STATUSES, type=pa.string()))
    bad = np.asarray(pc.invert(allowed).fill_null(True).to_numpy(), dtype=np.bool_)
    if bad.any():
        statuses = sorted(
            {str(s) for s in np.asarray(messages.column("status").to_pylist(), dtype=object)[bad]}
        )
        problems.append(f"{int(bad.sum())} messages have a status outside {STATUSES}: {statuses}")
    delivered = np.unique(_ids(history.deliveries))
    orphans = delivered[~np.isin(delivered, unique)]
    if orphans.size:
        problems.append(
            f"{orphans.size} delivered msg_ids have no message row: {_examples(orphans)}"
        )
    if problems:
        return Verdict(name, "invalid", "; ".join(problems))
    return Verdict(name, "valid", f"{ids.size} messages, one row and one status each")


def check_ordering(history: History) -> Verdict:
    name = "ordering"
    messages = history.messages
    seq_no, has_seq = nullable_ints(messages.column("seq_no"))
    t_seq, has_t = nullable_ints(messages.column("t_sequenced"))
    ids = _ids(messages)
    problems = []
    half = has_seq != has_t
    if half.any():
        problems.append(
            f"{int(half.sum())} messages have only one of seq_no/t_sequenced: {_examples(ids[half])}"
        )
    both = has_seq & has_t
    seq, t, seq_ids = seq_no[both], t_seq[both], ids[both]
    order = np.argsort(seq, kind="stable")
    seq, t, seq_ids = seq[order], t[order], seq_ids[order]
    repeated = np.unique(seq[1:][seq[1:] == seq[:-1]])
    if repeated.size:
        problems.append(f"{repeated.size} seq_nos are used more than once: {_examples(repeated)}")
    backwards = np.flatnonzero(t[1:] < t[:-1]) + 1
    if backwards.size:
        problems.append(
            f"{backwards.size} messages were sequenced earlier than a lower seq_no: "
            f"msg_ids {_examples(seq_ids[backwards])}"
        )
    if problems:
        return Verdict(name, "invalid", "; ".join(problems))
    return Verdict(name, "valid", f"{seq.size} sequenced messages in seq_no order")


def check_committed_sequenced(history: History) -> Verdict:
    name = "committed-implies-sequenced"
    messages = history.messages
    committed = np.asarray(
        pc.equal(messages.column("status"), "committed").fill_null(False).to_numpy(), dtype=np.bool_
    )
    _, has_seq = nullable_ints(messages.column("seq_no"))
    t_seq, has_t_seq = nullable_ints(messages.column("t_sequenced"))
    t_commit, has_commit = nullable_ints(messages.column("t_committed"))
    ids = _ids(messages)
    missing = committed & ~(has_seq & has_t_seq & has_commit)
    early = committed & has_t_seq & has_commit & (t_commit < t_seq)
    problems = []
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


def check_stage_order(history: History) -> Verdict:
    name = "stage-order"
    messages = history.messages
    ids = _ids(messages)
    previous = np.asarray(messages.column("t_intended").to_numpy(), dtype=np.int64)
    bad = np.zeros(ids.size, dtype=np.bool_)
    for column in _STAGE_COLUMNS:
        values, present = nullable_ints(messages.column(column))
        bad |= present & (values < previous)
        previous = np.where(present, values, previous)
    if bad.any():
        return Verdict(
            name,
            "invalid",
            f"{int(bad.sum())} messages have a stage time earlier than the stage before it: "
            f"{_examples(ids[bad])}",
        )
    return Verdict(name, "valid", f"{ids.size} messages with stage times in order")


CHECKERS: Mapping[str, Checker] = {
    "conservation": check_conservation,
    "ordering": check_ordering,
    "committed-implies-sequenced": check_committed_sequenced,
    "stage-order": check_stage_order,
}


def run_checkers(history: History, checkers: Mapping[str, Checker] = CHECKERS) -> list[Verdict]:
    """Run each checker; an exception becomes an "unknown" verdict naming the error."""
    verdicts = []
    for name, checker in checkers.items():
        try:
            verdict = checker(history)
        except Exception as error:  # noqa: BLE001 - a checker must never crash a run (DESIGN.md)
            verdict = Verdict(name, "unknown", f"checker raised {type(error).__name__}: {error}")
        verdicts.append(verdict)
    return verdicts
