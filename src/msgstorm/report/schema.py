"""The JSON Schema of summary.json, shipped with the package (``msgstorm schema`` prints it).

Place in the pipeline: beside the reports, for tools that read summary.json. The schema file
``summary.schema.json`` (JSON Schema 2020-12) sits next to this module, generated from the
pydantic model ``analysis.summary_model.Summary``; a test checks that the shipped file is
what the model generates, and validates real summaries against it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

__all__ = ["SCHEMA_FILE", "summary_schema", "summary_schema_text"]

SCHEMA_FILE = "summary.schema.json"


def summary_schema_text() -> str:
    """The schema as shipped (JSON text)."""
    return files("msgstorm.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def summary_schema() -> dict[str, Any]:
    """The schema as a dict."""
    schema: dict[str, Any] = json.loads(summary_schema_text())
    return schema
