"""What every command of the command line shares: the command class, the consoles, the
error and ok lines, the scenario loader's exit on bad input, and SIGTERM as Ctrl-C.

``msgstorm.cli`` builds the typer app from the commands in this package; each command
module imports from here, never from ``msgstorm.cli``.
"""

from __future__ import annotations

import inspect
import json
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from msgstorm.errors import ExitCode

try:  # a recent typer carries its own copy of click
    from typer._click.core import Context
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click.core import Context  # type: ignore[assignment,no-redef,unused-ignore]
    from click.exceptions import UsageError  # type: ignore[assignment,no-redef,unused-ignore]


class Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments plainly (``SCENARIO.toml``, not typer's
    ``{SCENARIO.toml}``, which reads like a literal brace in a shell), and whose help is plain
    text: typer reads help as rich markup, which would eat ``[cluster]`` or ``[market]``, so
    every help string is escaped here, once, for every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            # A docstring's lines join into one paragraph (typer would keep each source line).
            self.help = escape(re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(self.help)))
        for param in self.params:
            if isinstance(param, (typer.core.TyperOption, typer.core.TyperArgument)) and param.help:
                param.help = escape(param.help)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [piece.replace("{", "", 1).replace("}", "", 1) if piece.startswith("{") else piece
                for piece in pieces]


class Group(typer.core.TyperGroup):
    """The table of commands. A usage error, whichever command it reaches (an unknown
    option or command, a value out of its range, a missing argument), is one ``error:`` line
    and exit ``BAD_INPUT``, as every other bad input is, instead of typer's boxed panel:
    a subcommand's options are parsed inside the group's ``invoke``, so these two methods
    see every one."""

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: object) -> Context:
        with _usage_as_error():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> object:
        with _usage_as_error():
            return super().invoke(ctx)


@contextmanager
def _usage_as_error() -> Iterator[None]:
    try:
        yield
    except UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # bare ``msgstorm``: the help, as asked
            raise
        if error.ctx is None:
            say_error(error.format_message().rstrip("."))
        else:  # named as the docs name it, however the program was started (``python -m msgstorm``)
            names, ctx = [], error.ctx
            while ctx.parent is not None:
                names.append(ctx.info_name or "")
                ctx = ctx.parent
            path = " ".join(["msgstorm", *reversed(names)])
            say_error(f"{path}: {error.format_message().rstrip('.')} (see '{path} --help')")
        raise typer.Exit(ExitCode.BAD_INPUT) from None


# soft_wrap: a long path or error line stays one line when stdout is a file or a pipe.
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def say_error(message: str, **options: Any) -> None:
    """``error: message`` on stderr. The message is plain text, never markup: paths, URLs and
    scenario text may hold square brackets (``runs/[a]``, ``agents[0]``)."""
    options.setdefault("highlight", False)
    err.print(Text.assemble(("error", "red"), ": ", message), **options)


def refuse_out(error: Exception, out_dir: Path | None, what: str = "the run directory") -> NoReturn:
    """Say why a command's ``--out`` cannot be used and exit 2: a ``RunDirError`` (a file in
    its place, a directory that holds something else: ``runner.py``) as it says it, an
    ``OSError`` creating it (a path under a file, no permission) as ``PATH: cannot create
    WHAT: the OS's reason``; ``out_dir`` None: the default under ``runs/``."""
    if isinstance(error, OSError):
        where = out_dir if out_dir is not None else Path("runs")
        say_error(f"{where}: cannot create {what}: {error.strerror or error}")
    else:
        say_error(f"--out {error}")
    raise typer.Exit(ExitCode.BAD_INPUT) from None


def say_ok(message: str) -> None:
    """``ok: message`` on stdout, the message as plain text."""
    out.print(Text.assemble(("ok", "green"), ": ", message), highlight=False)


def counted(n: int, noun: str) -> str:
    """``1 fault``, ``2 faults``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"

# A stop signal that came while numba compiled comes again this much later.
_AGAIN_S = 0.05


def _in_compiler(frame: FrameType | None) -> bool:
    """Whether ``frame`` (where a signal found the main thread) is inside numba or llvmlite."""
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/numba/" in path or "/llvmlite/" in path:
            return True
        frame = frame.f_back
    return False


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, a CI runner, ``kill``) stops the run as Ctrl-C does: what was
    recorded is settled and written. A second SIGTERM or SIGINT while stopping ends the
    process at once; the history's parts on disk stay whole (``report`` reads them)."""
    signals = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        if _in_compiler(frame):
            # Raised inside one of llvmlite's ctypes callbacks (numba compiling or loading a
            # cached function), a KeyboardInterrupt is lost there and leaves the compiler
            # broken: the process crashes (SIGSEGV) instead of settling. The signal comes
            # again in 50 ms, until the compiler has returned.
            import os
            import threading

            threading.Timer(_AGAIN_S, os.kill, (os.getpid(), signum)).start()
            return
        signals += 1
        if signals > 1:
            err.print("stopped again: exiting now; the history keeps what was flushed", highlight=False, markup=False)
            sys.stderr.flush()
            import os

            os._exit(ExitCode.INTERRUPTED)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


TargetOption = Annotated[str | None, typer.Option(
    "--target", metavar="NAME|URL",
    help="where to run: sim, nats, jetstream, redis, zmq, mqtt, rabbitmq, kafka, anvil, cometbft (msgstorm starts the "
         "server, the EVM node or the validators), or "
         "the URL of one you run (nats:// or tls://, jetstream://, redis:// or rediss://, mqtt://, amqp:// or rabbitmq://, "
         "kafka:// the bootstrap brokers, http:// or ws:// an EVM "
         "node's JSON-RPC; tcp:// the endpoint ZeroMQ binds); overrides the scenario's target")]
AllowRemoteOption = Annotated[bool, typer.Option(
    "--allow-remote", help="let --target or live.url name an address off this machine (load goes only "
                           "to loopback otherwise)")]


MaxTimeOption = Annotated[str | None, typer.Option(
    "--max-time", metavar="DURATION",
    help="refuse a run whose estimated wall time is longer than this, e.g. 3h (default: the scenario's "
         "limits.max_wall_time, 30min)")]


def _say_omb_notes(path: Path) -> None:
    """What of an OpenMessaging Benchmark workload msgstorm does not use, one note a line on
    stderr (a workload it cannot run is refused by ``load_scenario``)."""
    from msgstorm.scenario import ScenarioError
    from msgstorm.scenario.omb import omb_scenario_text

    try:
        notes = omb_scenario_text(path.read_text(encoding="utf-8", errors="replace"), str(path)).notes
    except (ScenarioError, OSError):
        return
    for note in notes:
        err.print(f"note: {path}: {note}", highlight=False, markup=False, soft_wrap=True)


def load_or_exit(path: Path, overrides: list[str], target: str | None = None, allow_remote: bool = False,
                 max_time: str | None = None) -> Any:
    # The scenario schema (pydantic) loads only for the commands that read a scenario.
    from msgstorm.scenario import ScenarioError, load_scenario

    options: list[str | tuple[str, str]] = [*overrides]
    if max_time is not None:
        options.append(("--max-time", f"limits.max_wall_time={json.dumps(max_time)}"))

    if target is not None or allow_remote:
        from msgstorm.scenario.target_option import target_overrides

        try:
            options += (target_overrides(target, allow_remote) if target is not None
                        else ["live.allow_remote=true"])
        except ValueError as error:
            say_error(str(error))
            raise typer.Exit(ExitCode.BAD_INPUT) from None
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        _say_omb_notes(path)
    try:
        loaded = load_scenario(path, options)
    except ScenarioError as error:
        for issue in error.issues:
            say_error(str(issue), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    from msgstorm.scenario.errors import format_field
    from msgstorm.scenario.refs import fault_time_problems

    for loc, message in fault_time_problems(loaded, shortened=True):  # only a run shortened by --set has any
        err.print(f"note: {format_field(loc)}: {message}", highlight=False, markup=False, soft_wrap=True)
    return loaded


