"""Empirical link delays: samples read from a file, drawn by the link model.

Place in the pipeline: inside the simulator, beside ``sim/link_model.py``. A link model
``dist = "empirical"`` names a CSV or Parquet file and a column of one-way delays (in
``unit``); a transmission on such a link takes one of them, picked by one uniform from the
link's seeded stream (index floor(u × count)), plus the model's ``overhead``; the link's base
latency is not used. ``LinkSamples`` loads each (file, column, unit) once and packs every
column into one int64 array that the compiled link model reads: at a column's offset its
count, then its delays in ns. A model's parameter is that offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from msgstorm.scenario.replay import read_delays_ns

if TYPE_CHECKING:
    from msgstorm.scenario.schema import LinkModel

__all__ = ["LinkSamples"]

class LinkSamples:
    """Every empirical column a topology's links use, packed for the compiled link model."""

    def __init__(self) -> None:
        self.array = np.zeros(1, dtype=np.int64)  # never empty: numba needs an array either way
        self._offsets: dict[tuple[str, str, str], int] = {}

    def offset(self, spec: LinkModel) -> int:
        """Where ``spec``'s delays start in ``array`` (loaded on first use)."""
        assert spec.samples is not None and spec.column is not None
        key = (spec.samples, spec.column, spec.unit)
        found = self._offsets.get(key)
        if found is None:
            delays = read_delays_ns(*key)
            found = len(self.array)
            self.array = np.concatenate([self.array, np.asarray([len(delays)], dtype=np.int64), delays])
            self._offsets[key] = found
        return found
