"""The package's version and the folder it is installed in: the bottom of the layers.

Place in the pipeline: read by what writes or starts runs (``history/run_row.py`` stamps
the version in each run's row, ``report/apart.py`` starts its worker from the folder,
sweeps and the command line print it) and by ``pyproject.toml`` (its ``version`` attribute),
so that nothing below the package's face imports the face for them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DIR", "__version__"]

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent  # src/msgstorm (or site-packages/msgstorm)
