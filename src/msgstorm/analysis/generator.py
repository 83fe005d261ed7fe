"""The load generator's own record: did it keep the schedule?

Place in the pipeline: one analysis step, reading ``t_intended`` and ``t_sent`` of the
``messages`` table. On a live target the send lag (``t_sent - t_intended``) is the
generator's: a generator that falls behind sends less than the scenario offers, and the
run must say so. ``generator_summary`` gives summary.json's ``generator``: {saturated,
send_lag_ms: {p50, p99, max}, processes, unsent}, saturated when more than 1% of the
messages left more than ``SATURATION_LAG_MS`` late or never left (``unsent``: the generator
stops at the run's end rather than send its backlog late; not those after a ``node_down``,
where the target ended the sending), ``processes`` what the run's start event says the generator and its
consumers ran in (1: one process; null for a history that does not say); null on the simulator (whose sends are exact, and whose later sends
are backpressure holds, not a generator). The ``generator`` checker turns it into a
verdict: invalid when saturated.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of, ms, percentiles
from msgstorm.analysis.delivery import Verdict
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.scenario.registry import CHECKERS

__all__ = ["SATURATION_LAG_MS", "check_generator", "generator_summary"]

SATURATION_LAG_MS = 1.0


def generator_summary(history: History) -> dict[str, Any] | None:
    if history.is_simulated:
        return None
    # The shared read-only columns (History.ints): the lag is this call's one array.
    sent, present = history.ints("messages", "t_sent")
    lag = sent[present]
    lag -= history.ints("messages", "t_intended")[0][present]
    unsent = _unsent(history)
    if lag.size == 0:
        return {"saturated": unsent > 0, "send_lag_ms": {"p50": None, "p99": None, "max": None},
                "processes": _processes(history), "unsent": unsent}
    largest = ms(float(lag.max()))
    # An unsent message is later than any sent one: saturated when more than 1% of the
    # messages left over the limit or never left (one the run's end caught by a hair is not).
    late = int(np.count_nonzero(lag > SATURATION_LAG_MS * 1e6)) + unsent
    p50, p99 = (ms(v) for v in percentiles(lag, (50.0, 99.0), scratch=True))  # lag: this call's own array
    return {"saturated": late > 0.01 * (lag.size + unsent),
            "send_lag_ms": {"p50": p50, "p99": p99, "max": largest}, "processes": _processes(history),
            "unsent": unsent}


def _unsent(history: History) -> int:
    """Rows with status ``unsent`` intended before the run's first ``node_down``: the
    generator's shortfall. A live target that found its server or node gone (a user's, at
    ``live.url``) ended the sending there, so what the schedule meant after it went unsent
    for that loss, which its event names, not because the generator fell behind."""
    codes, names = history.codes("messages", "status")
    if "unsent" not in names:
        return 0
    unsent = codes == names.index("unsent")
    down = events_of(history, EventKind.NODE_DOWN).t  # in time order
    if down.size:
        unsent &= history.ints("messages", "t_intended")[0] < int(down[0])
    return int(unsent.sum())


def _processes(history: History) -> int | None:
    starts = events_of(history, EventKind.RUN_START).column("detail")
    detail = json.loads(starts[0]) if starts and starts[0] else {}
    processes = detail.get("processes")
    return int(processes) if isinstance(processes, int) else None


@CHECKERS.register("generator")
def check_generator(history: History) -> Verdict:
    summary = generator_summary(history)
    if summary is None:
        return Verdict("generator", "valid", "simulated target: sends leave exactly on schedule")
    lag = summary["send_lag_ms"]
    if summary["saturated"]:
        short = (f"; {summary['unsent']:,} messages intended before the run's end were never sent"
                 if summary["unsent"] else "")
        return Verdict("generator", "invalid",
                       f"the generator could not keep the schedule: send lag p99 {lag['p99']} ms, max {lag['max']} ms "
                       f"(over {SATURATION_LAG_MS} ms){short}; the offered load was not what the scenario asked")
    return Verdict("generator", "valid", f"send lag p99 {lag['p99']} ms, max {lag['max']} ms")
