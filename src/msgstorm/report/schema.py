"""The JSON Schema of summary.json, shipped with the package (``msgstorm schema`` prints it).

Place in the pipeline: beside the reports, for tools that read summary.json. The schema file
``summary.schema.json`` (JSON Schema 2020-12) sits next to this module, generated from the
typed sections of ``analysis.summary_model.Summary`` (the types ``analyse`` validates every
section against and writes summary.json from); a test checks that the shipped file is what
the types generate, and validates real summaries against it. Regenerate it after changing a
section's type: ``python -m msgstorm.report.schema > src/msgstorm/report/summary.schema.json``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from msgstorm.analysis.summary_model import summary_json_schema

__all__ = ["SCHEMA_FILE", "generated_schema_text", "summary_schema", "summary_schema_text"]

SCHEMA_FILE = "summary.schema.json"


def summary_schema_text() -> str:
    """The schema as shipped (JSON text)."""
    return files("msgstorm.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def summary_schema() -> dict[str, Any]:
    """The schema as a dict."""
    schema: dict[str, Any] = json.loads(summary_schema_text())
    return schema


def generated_schema_text() -> str:
    """The schema the section types generate, as the shipped file holds it."""
    return json.dumps(summary_json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(generated_schema_text(), end="")
