"""msgstorm.processes: the CPUs a process may use, and a child that ends with its parent,
each asked of the OS in this one module."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msgstorm.processes import usable_cpus

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "msgstorm"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: affinity and prctl")


def _in_fresh_process(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@linux_only
def test_usable_cpus_follow_the_affinity_and_the_go_servers_with_them() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    if os.cpu_count() == 1:
        pytest.skip("one CPU: no narrower affinity to set")
    printed = _in_fresh_process(
        "import os\nos.environ.pop('GOMAXPROCS', None)\nos.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from msgstorm.processes import usable_cpus\nfrom msgstorm.sweep import default_workers\n"
        "from msgstorm.live.servers import go_server_cpus, go_server_env\n"
        "print(usable_cpus(), default_workers(), go_server_env()['GOMAXPROCS'], go_server_cpus())")
    assert printed.split() == ["1", "1", "1", "1"]


def _state(pid: int) -> str | None:
    """The process's state letter (``Z``: ended, not yet reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


@linux_only
def test_a_child_that_asked_ends_when_its_parent_is_killed() -> None:
    """A parent starts two sleepers, one with ``die_with_parent``; a SIGKILL of the parent
    ends that one at once, and the other lives on."""
    with subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys, time\nfrom msgstorm.processes import die_with_parent\n"
             "tied = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
             "free = subprocess.Popen(['sleep', '60'])\n"
             "print(tied.pid, free.pid, flush=True)\ntime.sleep(60)"],
            stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        tied, free = (int(pid) for pid in parent.stdout.readline().split())
        try:
            assert _state(tied) not in (None, "Z") and _state(free) not in (None, "Z")
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            deadline = time.monotonic() + 5.0
            while _state(tied) not in (None, "Z") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _state(tied) in (None, "Z")
            assert _state(free) not in (None, "Z")
        finally:
            for pid in (tied, free):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_only_this_module_asks_the_os_for_cpus_or_a_parent_death_signal() -> None:
    """Every other module takes them from ``msgstorm.processes`` (four copies drifted before:
    the sweep's workers, the compile helpers, the Go servers, the recording's process)."""
    asking = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in ("sched_getaffinity", "prctl", "_PR_SET_PDEATHSIG"):
                asking.append((path.relative_to(PACKAGE).as_posix(), name))
    assert {module for module, _ in asking} == {"processes.py"}
    assert {name for _, name in asking} == {"sched_getaffinity", "prctl", "_PR_SET_PDEATHSIG"}
