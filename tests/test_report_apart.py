"""A live run's analysis in a fresh interpreter (``report/apart.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import msgstorm
from msgstorm.analysis import analyse
from msgstorm.history import read_history
from msgstorm.history.reader import HistoryMissing
from msgstorm.report import apart
from msgstorm.report.apart import AnalysisEnded, analyse_apart

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="1s"', 'run.drain="1s"'])
    return msgstorm.run(scenario, tmp_path_factory.mktemp("apart") / "run", write_report=False).run_dir


def test_the_analysis_apart_is_the_analysis_here_and_writes_the_same_files(run_dir: Path) -> None:
    here = analyse(read_history(run_dir))
    written_here = (run_dir / "summary.json").read_text()
    assert not (run_dir / "report.html").exists()
    there = analyse_apart(run_dir, 1.2345678, write_report=True)
    assert there.summary == here.summary
    assert there.windows.equals(here.windows)
    assert [(v.name, v.status) for v in there.verdicts] == [(v.name, v.status) for v in here.verdicts]
    written_there = json.loads((run_dir / "summary.json").read_text())
    assert written_there.pop("wall_s") == 1.235  # the wall time given, rounded as a run writes it
    before = json.loads(written_here)
    before.pop("wall_s")
    assert written_there == before
    assert (run_dir / "report.html").is_file() and (run_dir / "windows.csv").is_file()


def test_the_analysis_apart_runs_in_another_process_that_loads_no_live_driver(run_dir: Path,
                                                                               monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Path) -> None:
    # A probe module on the child's PYTHONPATH, loaded as an extension: it says where it ran
    # and what was imported by the time the registries asked for extensions.
    probe = tmp_path / "probe_ext.py"
    seen = tmp_path / "seen.json"
    probe.write_text("import json, os, sys\n"
                     f"open({str(seen)!r}, 'w').write(json.dumps({{'pid': os.getpid(), "
                     "'numba': 'numba' in sys.modules, 'drivers': 'msgstorm.live.drivers.nats' in sys.modules}))\n")
    monkeypatch.setenv("MSGSTORM_EXTENSIONS", str(probe))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    analyse_apart(run_dir, 1.0, write_report=False)
    facts = json.loads(seen.read_text())
    assert facts["pid"] != os.getpid()
    assert facts == {"pid": facts["pid"], "numba": False, "drivers": False}


def test_an_error_in_the_analysis_apart_is_raised_here_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(HistoryMissing, match="no history") as raised:
        analyse_apart(tmp_path / "empty", 1.0, write_report=False)
    assert any("in the analysis' process" in note for note in raised.value.__notes__)


def test_an_analysis_process_that_ends_without_a_result_is_said_to_have_ended(run_dir: Path, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ends_at_once.py").write_text("import os\nos._exit(3)\n")  # killed, out of memory, ...
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(apart, "_CHILD_MODULE", "ends_at_once")
    with pytest.raises(AnalysisEnded, match="exit status 3"):
        analyse_apart(run_dir, 1.0, write_report=False)
