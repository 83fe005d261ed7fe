"""report.html's section "Safety, liveness and integrity" (report/safety.py): the verdicts
read from the typed summary and the chain view where nodes diverge, read back."""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest
from test_analysis_safety import EQUIVOCATION

from msgstorm.analysis.summary_model import Summary
from msgstorm.history import read_history
from msgstorm.report.safety import safety_section


def _cells(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert body, html
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_the_section_shows_the_typed_verdicts_and_where_nodes_diverged(scenario_from, run_scenario) -> None:
    """The equivocation of tests/test_analysis_safety.py at one confirmation: safety invalid
    at height 3 (block 3 finalised by every peer, block 4 by us-east-4, which finalised both),
    liveness valid; no integrity row without [security], no quorum line without votes. The
    typed summary and summary.json's dictionary give the same section."""
    result: Any = run_scenario(scenario_from(EQUIVOCATION.format(confirmations=1)))
    history = read_history(result.run_dir)
    ((slug, title, html),) = safety_section(history, result.analysis.result)
    assert (slug, title) == ("safety", "Safety, liveness and integrity")
    assert safety_section(history, Summary.model_validate(result.summary)) == [(slug, title, html)]
    verdicts = _cells(html, "safety-verdicts")
    assert [row[:2] for row in verdicts[1:]] == [["safety", "invalid"], ["liveness", "valid"]]
    assert verdicts[1][2] == ("conflicting blocks finalised at 1 height (byzantine: us-east-0): height 3: block 3 by "
                              "us-east-1 us-east-2 us-east-3 us-east-4, block 4 by us-east-4")
    assert 'id="quorum-bound"' not in html
    view = {row[0]: row[1:] for row in _cells(html, "chain-view")[1:]}
    assert view == {"us-east-0 (byzantine)": ["3"], "us-east-1": ["3"], "us-east-2": ["3"], "us-east-3": ["3"],
                    "us-east-4": ["3 4"]}


def test_a_summary_dictionary_with_a_misspelt_section_is_refused(scenario_from, run_scenario) -> None:
    """Read by string keys, a check whose ``detail`` was misspelt showed an em dash for it;
    read through the summary's type it is refused, naming the key."""
    result: Any = run_scenario(scenario_from(EQUIVOCATION.format(confirmations=1)))
    misspelt = {**result.summary, "checks": [{"name": check["name"], "verdict": check["verdict"],
                                              "detial": check["detail"]} for check in result.summary["checks"]]}
    with pytest.raises(pydantic.ValidationError, match="detial"):
        Summary.model_validate(misspelt)
