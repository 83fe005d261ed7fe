"""Errors a target raises that the command line reports as bad input (exit 2).

Place in the pipeline: the bottom layer, so the command line can name them without
loading the targets that raise them.
"""

from __future__ import annotations

__all__ = ["TargetError"]


class TargetError(RuntimeError):
    """A target could not run: a server missing or failing to start, a URL that is not
    reachable or not allowed. Raised before any load is sent."""
