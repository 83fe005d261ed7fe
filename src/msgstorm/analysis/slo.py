"""SLO verdicts (placeholder until analysis lands)."""
from __future__ import annotations


def slo_metric_known(name: str) -> bool:
    return True
