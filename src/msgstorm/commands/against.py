"""``msgstorm against``: runs of a replay beside the figures published for the day it replays.

Place in the pipeline: a command (registered in ``msgstorm.cli``), reading the summaries of
runs of one scenario (a sweep's directory, e.g. ``msgstorm sweep SCENARIO --seeds 5``, or
run directories) and printing the "against the day" table (``report/against.py``): per
figure the mean and range over the runs, the published value with its source, the band,
within or not (checked figures only: a fitted one is never agreement), fitted or predicted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msgstorm.commands.common import out, say_error
from msgstorm.errors import ExitCode

__all__ = ["against"]


def against(
    runs: Annotated[list[Path], typer.Argument(help="run directories of one scenario, or a directory of runs "
                                               "(a sweep's --out)", metavar="RUN_DIR...")],
    fail_outside: Annotated[bool, typer.Option("--fail-outside", help="exit 1 when a checked figure's mean is "
                                               "outside its band")] = False,
) -> None:
    """Print runs' figures against the day's published ones: measured (mean, range), published, band, within, role."""
    from msgstorm.report.against import against_table, market_against_rows
    from msgstorm.report.compare import RunDirError, load_group, load_run

    try:  # a run directory, or a directory of runs
        groups = [load_run(path, "A") if (path / "summary.json").is_file() else load_group(str(path), "A")
                  for path in runs]
    except RunDirError as error:
        say_error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    summaries = [summary for group in groups for summary in (group.replicas or (group.summary,))]
    markets = [summary.market for summary in summaries if summary.market is not None]
    rows = market_against_rows(markets) if len(markets) == len(summaries) else []
    if not rows:
        say_error("no figures to compare: the runs have no english_auction lots with "
                  "[market.liquidation.published] figures")
        raise typer.Exit(ExitCode.BAD_INPUT)
    venue = markets[0].venue
    lots = venue.auctions if venue is not None else None
    out.print(against_table(rows, lots.unit if lots else None, markets[0].currency))
    if fail_outside and any(row.within is False for row in rows):
        raise typer.Exit(ExitCode.CHECK_FAILED)
