"""The heap setting the ``msgstorm`` command makes first (``msgstorm.heap``): a block the size
of a million-message column, freed, is reused by the next one instead of mapped anew.

Checked in a fresh interpreter through the kernel's count of minor page faults: touching
a newly mapped 8 MB block faults its pages in (about 500 faults on the development
machine, which maps several pages a fault), touching reused heap memory faults in none.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
from msgstorm.heap import keep_freed_memory
took = keep_freed_memory()
n = 1 << 20  # a million int64: 8 MB
first = np.ones(n, dtype=np.int64)
del first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
second = np.ones(n, dtype=np.int64)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(int(took), after - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's (mallopt); elsewhere the command leaves the allocator as it is")
def test_a_freed_column_sized_block_is_reused_not_mapped_again() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    took, faults = (int(word) for word in result.stdout.split())
    assert took == 1
    # Mapped anew, the block faults in page by page (hundreds of faults even where the
    # kernel maps several pages a fault); reused heap pages fault in none.
    assert faults < 50, faults



_POOL = """
import importlib, os, sys
if len(sys.argv) > 2:
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = sys.argv[2]
importlib.import_module(sys.argv[1])  # it loads the heap's settings before pyarrow
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
"""


def test_the_command_takes_arrows_buffers_from_the_c_librarys_heap_unless_the_environment_says() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen = subprocess.run([sys.executable, "-c", _POOL, "msgstorm.cli"], capture_output=True, text=True, check=True,
                            env=env)  # the command's module
    assert chosen.stdout.split() == ["system"]
    kept = subprocess.run([sys.executable, "-c", _POOL, "msgstorm.heap", "jemalloc"], capture_output=True, text=True,
                          check=True, env=env)
    assert kept.stdout.split() == ["jemalloc"]
