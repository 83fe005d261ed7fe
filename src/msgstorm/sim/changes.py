"""Sampled state written when it changes: the rule the simulator's samplers write by.

Place in the pipeline: inside the simulator, between a sampler (``Sequencer.sample``, every
``run.sample_interval``) and the recorder. A sampled series (``queue_depth``,
``queue_depth_max``, ``block_backlog``, ``lane_depth``, ``lane_block_backlog``) is written at
a sample only when its value or node differs from the one it wrote last, and once more at
the run's last sample when that one was not written: the ``events`` table holds a series'
changes and where it ends, never its idle hours, and a reader holds each value until the
next row, to the last (docs/history.md, "Sampled series"; ``analysis/samples.py`` reads
them so). The one-node loop (``sim/solo_loop.py``) writes its three series by the same
rule, compared in the loop and closed by ``close_rows`` here.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgstorm.sim.recorder import Recorder

__all__ = ["ChangedSamples", "close_rows"]

# A row as ``Recorder.event_rows`` takes it: (t, kind, node, value, height, detail).
Row = tuple[int, str, str | None, float | None, int | None, str | None]


class ChangedSamples:
    """One run's sampled series: each series' last row written, and the last sample's time."""

    __slots__ = ("_last", "_record", "t_last")

    def __init__(self, record: Recorder) -> None:
        self._record = record
        # kind -> (t, node, value) of the row it wrote last
        self._last: dict[str, tuple[int, int | None, float]] = {}
        self.t_last = -1  # the last sample's time (-1: none taken)

    def tick(self, t: int) -> None:
        """A sample is taken at ``t``: every series it reads is ``write``-n at ``t`` next."""
        self.t_last = t

    def write(self, t: int, kind: str, node: int | None, value: float) -> None:
        """Series ``kind`` reads ``value`` at node ``node`` at ``t``: a row if either changed."""
        last = self._last.get(kind)
        if last is None or last[2] != value or last[1] != node:
            self._record.event(t, kind, node, value)
            self._last[kind] = (t, node, value)

    def close(self) -> None:
        """The run ended: each series whose last sample wrote no row gets one there (the
        value it held), so a reader knows where it ends."""
        for kind, (t, node, value) in self._last.items():
            if t < self.t_last:
                self._record.event(self.t_last, kind, node, value)
                self._last[kind] = (self.t_last, node, value)


def close_rows(t_last: int, last: Sequence[tuple[str, int, float]], node: str | None) -> list[Row]:
    """``ChangedSamples.close``'s rows for series kept elsewhere (the one-node loop's): each
    ``(kind, t written, value)`` whose row was written before the last sample, ``t_last``."""
    return [(t_last, kind, node, value, None, None) for kind, t, value in last if 0 <= t < t_last]


def quiet_samples(t: int, interval: int, t_next: int, steps: int, check_mask: int,
                  hard_stop: int, t_look: int) -> int:
    """How many samples after a quiet one at ``t`` (one whose next sample would read the same
    unless something happens first) the loop may pass without taking: those before
    ``t_next``, the loop's next anything, none after ``hard_stop``, and none at a step at
    which the loop looks for the end (``steps & check_mask == 0``, ``steps`` counting the
    one at ``t``) from ``t_look`` (the end of the traffic) on, where it could end: such a
    sample is taken, so the run ends where it would. The loop counts each passed one as a
    step, as if it had run and found nothing new."""
    if steps & check_mask == 0:
        return 0  # the loop looks for the end after this one, as it was
    most = min((t_next - t - 1) // interval, (hard_stop - t) // interval)
    first_late = max(1, -((t - t_look) // interval))  # the first sample from t_look on
    look = first_late + ((-(steps + first_late)) & check_mask)  # and its first look for the end
    return max(0, min(most, look - 1))
