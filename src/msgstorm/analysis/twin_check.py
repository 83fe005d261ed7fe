"""The twin's check: its knee against the measured one, or why it is not a prediction.

Place in the pipeline: ``msgstorm calibrate --check`` -> ``calibrate(history)`` ->
``Calibration`` -> the twin is written and run -> **check_twin(calibration, twin's steps)**
-> ``TwinCheck`` -> the command prints it and exits 0 only when the twin's knee is a
prediction and within ``PREDICTION_TOLERANCE`` of the measured one.

The twin's knee is a prediction unless the fit or the measured ramp says otherwise
(``Calibration.doubts``: the low steps do not pin the capacity down, or the measured knee
was set by a stall that passed) or its own run does, or both together: a twin whose knee
misses the measured one where the machine's cores were busy with other work at the measured
limit (``Calibration.machine_limit``) names that as the reason, not as a miss (one that
agrees is a prediction: the target's own limit was there too); a twin that passed every step of the
ramp only says its knee lies beyond the last step (a lower bound, not a number to compare),
and one whose first step failed has no knee at all. Both runs are judged by the same knee
rule (``analysis/capacity.py``) on the same ramp, since the twin keeps the source's agents
and ``[analysis]``. A chain's twin also carries its base-fee path against the node's
(``chain_fit.base_fee_path``), which the command prints beside the knees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from msgstorm.analysis.calibrate import PREDICTION_TOLERANCE, Calibration
from msgstorm.analysis.chain_fit import BaseFeePath

__all__ = ["TwinCheck", "check_twin"]


@dataclass(frozen=True)
class TwinCheck:
    """The measured knee, the twin's, and the reasons the twin's is not a prediction."""

    measured_knee_per_s: float | None  # None: the measured ramp's first step already failed
    twin_knee_per_s: float | None  # None: the twin's first step already failed
    doubts: tuple[str, ...]  # empty: the twin's knee is a prediction
    # A chain's twin: its base fee against the node's, block by block (said, not judged).
    base_fee: BaseFeePath | None = None

    @property
    def relative_error(self) -> float | None:
        """(twin - measured) / measured, None without a twin knee."""
        if self.twin_knee_per_s is None or self.measured_knee_per_s is None:
            return None
        return (self.twin_knee_per_s - self.measured_knee_per_s) / self.measured_knee_per_s

    @property
    def predicted(self) -> bool:
        return not self.doubts

    @property
    def within_tolerance(self) -> bool:
        """A prediction within ``PREDICTION_TOLERANCE`` of the measured knee."""
        error = self.relative_error
        return self.predicted and error is not None and abs(error) <= PREDICTION_TOLERANCE


def check_twin(calibration: Calibration, twin_knee_per_s: float | None, twin_steps: pa.Table,
               base_fee: BaseFeePath | None = None) -> TwinCheck:
    """Judge the twin's knee (``capacity.knee_rate_per_s`` of its run) given its step table
    (``capacity.STEP_SCHEMA``) against the calibration's measured knee."""
    doubts = list(calibration.doubts)
    passed = [bool(ok) for ok in twin_steps.column("passed").to_pylist()]
    offered = twin_steps.column("offered_per_s").to_pylist()
    if twin_knee_per_s is None:
        doubts.append("the twin's first step already fails the knee criterion: it has no knee to compare")
    elif passed and all(passed):
        doubts.append(f"the twin passed every step, up to {float(offered[-1]):,.0f}/s: its knee lies beyond the "
                      "ramp's last step, so that rate is only a lower bound (a longer ramp would find it)")
    measured = calibration.measured_knee_per_s
    agrees = (twin_knee_per_s is not None and measured is not None
              and abs(twin_knee_per_s - measured) <= PREDICTION_TOLERANCE * measured)
    if calibration.machine_limit and not agrees:
        # A machine busy with other work at the measured limit: a twin that misses is not
        # wrong about the target; one that agrees shows the target's own limit was there too.
        doubts.append(calibration.machine_limit)
    return TwinCheck(measured_knee_per_s=calibration.measured_knee_per_s,
                     twin_knee_per_s=None if twin_knee_per_s is None else float(twin_knee_per_s),
                     doubts=tuple(doubts), base_fee=base_fee)
