"""The ``msgstorm`` command line: run, validate, report, compare, against, schema.

Exit codes: ``msgstorm.errors.ExitCode``, one per cause (docs/cli.md lists them); no
command exits with a bare number.

Lines a script may read (paths, errors) are never wrapped, whatever the terminal's width.

This module is the entry point and the table of commands: each command is a plain
function in ``msgstorm.commands`` (``runs``: validate, run, report, compare; ``against``; ``calibrate``;
``sweeps``: sweep, safe-leverage), registered here in the order ``--help`` lists them.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Annotated

import typer

from msgstorm.commands.against import against
from msgstorm.commands.calibrate import calibrate
from msgstorm.commands.common import Command, Group, out
from msgstorm.commands.runs import compare, report, run, validate
from msgstorm.commands.sweeps import safe_leverage_command, sweep
from msgstorm.errors import EXIT_CODES_HELP, ExitCode
from msgstorm.heap import (
    keep_freed_memory,  # it chooses Arrow's pool before pyarrow loads (no command module loads pyarrow on import)
)

app = typer.Typer(cls=Group, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Stress-test the messaging layer of a trading system.", epilog=EXIT_CODES_HELP)


def _version(value: bool) -> None:
    if value:
        from msgstorm.version import __version__

        out.print(f"msgstorm {__version__}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False) -> None:
    """Stress-test the messaging layer of a trading system."""


for command in (validate, run, report, compare, against, calibrate, sweep):
    app.command(cls=Command)(command)
app.command("safe-leverage", cls=Command)(safe_leverage_command)


@app.command(cls=Command)
def schema() -> None:
    """Print the JSON Schema of summary.json."""
    from msgstorm.report.schema import summary_schema_text

    sys.stdout.write(summary_schema_text())


def main() -> None:  # pragma: no cover - console entry (pyproject [project.scripts])
    # At exit the interpreter runs full cycle collections over every object the command left
    # (about 0.3 s after a million-message run). Every file is closed by then, so the objects
    # are frozen out of the collector's sight first; they are freed with the process.
    atexit.register(gc.freeze)
    # And what the command line's imports made lives as long as the process: frozen now, out
    # of the sight of the collections the command's run causes (measured: the full one when
    # the analysis turns the collector back on, 0.06 s of a one-million-message run, no
    # longer comes). Only here, the console entry: a process that runs commands in turn (the
    # tests) keeps collecting what each leaves.
    gc.freeze()
    keep_freed_memory()
    app()
