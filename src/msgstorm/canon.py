"""A model's canonical JSON and its hash: one rule for every place that names a scenario.

Place in the pipeline: at the bottom (no msgstorm import). ``scenario.scenario_hash`` and
the history's run row (``history/run_row.py``) both read a validated scenario through it, so
the hash a run's row records is the one ``msgstorm`` prints and a sweep's manifest compares.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_hash", "canonical_json"]


def canonical_json(model: Any) -> str:
    """A pydantic model's JSON with sorted keys, field aliases as written in files."""
    return json.dumps(model.model_dump(mode="json", by_alias=True), sort_keys=True)


def canonical_hash(model: Any) -> str:
    """The SHA-256 of ``canonical_json(model)``, in hex."""
    return hashlib.sha256(canonical_json(model).encode()).hexdigest()
