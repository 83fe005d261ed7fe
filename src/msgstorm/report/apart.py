"""A live run's analysis in a fresh interpreter, so that it starts from what ``msgstorm report`` holds.

Place in the pipeline: ``runner.run`` -> (the recording, ``live/apart.py``) -> **analyse_apart**
-> (in a new process) ``read_history`` -> ``analyse`` -> summary.json, report.html,
windows.csv; the ``Analysis`` comes back pickled. The history is the only thing the two
processes share, as it is for ``msgstorm report``.

Why: the process that loaded a live scenario holds every live driver and, through their wire
clients, numba and llvmlite (validation asks each driver class about the scenario). A child
forked from it holds the same pages, so the analysis of a run in that process, or in a fork
of it, starts from and peaks at that much more than ``msgstorm report`` of the same history
(docs/dev/performance-log.md, "The analysis in a fresh interpreter"). A new interpreter
(``subprocess``, not ``os.fork``) imports only what the analysis needs.

What it costs: starting an interpreter and importing the analysis, against a live run's tens
of seconds. What it changes: nothing the analysis reads (the
history on disk; the registries' built-in entries and ``MSGSTORM_EXTENSIONS``, which the new
process loads as this one does). An exception in the analysis is pickled back and raised
here; Ctrl-C reaches this process only (the child is in a session of its own) and ends the
child; the child ends with this process (``die_with_parent``). The child imports msgstorm
from where this process did (the package's directory first on its ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from msgstorm.analysis import Analysis
from msgstorm.heap import keep_freed_memory
from msgstorm.processes import die_with_parent, picklable_error
from msgstorm.report.rerun import analyse_run_dir
from msgstorm.version import PACKAGE_DIR

__all__ = ["AnalysisEnded", "analyse_apart"]

_DONE, _FAILED = "done", "failed"
# The module the new interpreter runs (``python -m``): this one, whose ``_main`` analyses.
_CHILD_MODULE = "msgstorm.report.apart"


class AnalysisEnded(RuntimeError):
    """The analysis' process ended without sending its result (killed, out of memory)."""


def analyse_apart(run_dir: Path, wall_s: float, write_report: bool) -> Analysis:
    """Analyse ``run_dir``'s history in a new interpreter, which writes summary.json (with
    ``wall_s``) and, when ``write_report``, report.html, windows.csv and latency.hlog; return
    its ``Analysis``. Raise what the analysis raised."""
    package_root = str(PACKAGE_DIR.parent)
    env = dict(os.environ)  # with the Arrow pool ``msgstorm.heap`` chose, read as pyarrow loads
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    result_read, result_write = os.pipe()
    try:
        child = subprocess.Popen(  # noqa: S603 - this interpreter, a module of this package
            [sys.executable, "-m", _CHILD_MODULE, str(result_write), str(run_dir), repr(wall_s),
             "1" if write_report else "0"],
            env=env, pass_fds=(result_write,), start_new_session=True)
    finally:
        os.close(result_write)
    try:
        with os.fdopen(result_read, "rb") as pipe:
            sent = pipe.read()  # until the child's end closes it
        status = child.wait()
    finally:
        if child.poll() is None:  # interrupted here: the analysis is not wanted any more
            child.kill()
            child.wait()
    if not sent:
        raise AnalysisEnded(f"the analysis' process ended without a result (exit status {status}); "
                            f"re-analyse the run with: msgstorm report {run_dir}")
    outcome, detail = pickle.loads(sent)
    if outcome == _FAILED:
        raise detail
    analysis: Analysis = detail
    return analysis


def _main(argv: list[str]) -> None:
    """The child: analyse, write the run's files, send the ``Analysis`` (or the error) back."""
    die_with_parent()
    keep_freed_memory()  # as the ``msgstorm`` command sets its own heap
    result_fd, run_dir, wall_s, write_report = int(argv[0]), Path(argv[1]), float(argv[2]), argv[3] == "1"
    sent: tuple[str, Any]
    try:
        analysis = analyse_run_dir(run_dir, wall_s, write_report=write_report)[1]
        sent = (_DONE, analysis)
    except Exception as error:  # noqa: BLE001 - raised in the parent
        sent = (_FAILED, picklable_error(error, "the analysis' process"))
    data = pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL)
    with os.fdopen(result_fd, "wb") as pipe:
        pipe.write(data)


if __name__ == "__main__":
    _main(sys.argv[1:])
