"""Faults: the schedule of what goes wrong, shared by sim and live targets."""

from msgstorm.faults.schedule import FaultOp, fault_schedule

__all__ = ["FaultOp", "fault_schedule"]
