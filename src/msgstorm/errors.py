"""Exit codes of the command line, and the errors a target raises.

Place in the pipeline: the bottom layer, so the command line can name them without
loading the targets that raise them.

``ExitCode``: one code per cause, as k6 has (docs/cli.md lists them). 0-3 keep the meaning
they had before the later ones were told apart from them, so scripts written against
them still read them the same way.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EXIT_CODES_HELP", "DataFileError", "ExitCode", "TargetError"]


class ExitCode(IntEnum):
    """What ``msgstorm`` exits with; each cause has its own code."""

    OK = 0
    # An SLO failed (``run``, ``report``; with --strict also one that could not be judged),
    # or ``compare --fail-on-regression`` found a regression.
    CHECK_FAILED = 1
    # Bad input or usage: a scenario, an option, a path or a place to write that cannot be
    # used; the message names what was wrong and what would be right.
    BAD_INPUT = 2
    # Interrupted: Ctrl-C or SIGTERM stopped the run, or ``report`` read a history cut off
    # by a kill; what was recorded is kept and ``msgstorm report RUN_DIR`` finishes the job.
    INTERRUPTED = 3
    # Out of room: the disk (or the quota) filled while the history was written; what was
    # saved before is kept and said.
    OUT_OF_SPACE = 4
    # A sweep finished, but some of its runs failed (each failed run is a row with its
    # error). safe-leverage counts a failed run as over budget instead (its answer says so).
    RUNS_FAILED = 5
    # The target could not run: a live server missing, failing to start or not reachable,
    # so nothing was sent (``report`` on such a run says so with the same code).
    TARGET_FAILED = 6
    # ``run --strict``: a server the run needed (one msgstorm started) exited on its own
    # before the run's end, killed or crashed, not by a scheduled fault: the run measured a
    # broker that went away, whatever its SLOs say.
    SERVER_EXITED = 7


# What each code means in a few words: ``msgstorm --help`` lists them (docs/cli.md at length).
_MEANINGS = {
    ExitCode.OK: "ok",
    ExitCode.CHECK_FAILED: "an SLO failed (compare --fail-on-regression: a regression)",
    ExitCode.BAD_INPUT: "bad input or usage",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM) or a history cut off by a kill",
    ExitCode.OUT_OF_SPACE: "the disk filled while the history was written",
    ExitCode.RUNS_FAILED: "a sweep finished, but some of its runs failed",
    ExitCode.TARGET_FAILED: "a live run never started (its target failed)",
    ExitCode.SERVER_EXITED: "run --strict: a server the run needed exited early",
}
EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{int(code)} {_MEANINGS[code]}" for code in ExitCode) + "."


class TargetError(RuntimeError):
    """A target could not run: a server missing or failing to start, a URL that is not
    reachable or not allowed. Raised before any load is sent (exit ``TARGET_FAILED``)."""


class DataFileError(ValueError):
    """A data file a scenario names (prices, accounts) or reads (the crypto calibration of
    ``[security]``) that cannot be used, found when the run
    reads it: the message names the file, the row and what would be right (exit ``BAD_INPUT``;
    a sweep's run records it as its error)."""
