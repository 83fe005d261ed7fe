"""The summary's sections as a registry (``analysis/sections.py``): every key of summary.json
is one registered section with a typed result, and the JSON is written from those types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from test_analysis_history import write_history

from msgstorm.analysis import analyse
from msgstorm.analysis import sections as sections_module
from msgstorm.analysis.sections import SECTIONS, Section, SectionError, SectionRegistry
from msgstorm.analysis.summary_model import Queue, Summary
from msgstorm.report.schema import generated_schema_text, summary_schema_text
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Small sim examples that between them have every optional section but hop_split's relay
# (ethereum, slow at this size, is left to test_analysis_relay) and the live ones.
SHIPPED = ("quickstart", "front-running", "byzantine", "oracle-attack", "self-healing", "cross-chain-collateral",
           "forks", "black-thursday", "solana-spam")
# What the runner adds after the analysis: not a section.
RUNNER_KEYS = {"wall_s"}


def test_the_registry_has_one_section_per_field_of_the_summary_type_in_its_order() -> None:
    assert list(SECTIONS) == [key for key in Summary.model_fields if key not in RUNNER_KEYS]
    assert list(SECTIONS)[-1] == "slo", "an SLO reads the sections before it"
    assert SECTIONS["queue"].model == Queue


def test_a_section_the_summary_type_lacks_cannot_be_registered() -> None:
    registry = SectionRegistry()
    with pytest.raises(SectionError, match="'queue_typo' has no field on Summary"):
        registry.register("queue_typo")
    registry.register("queue")(lambda history, ctx: None)
    with pytest.raises(SectionError, match="'queue' is registered twice"):
        registry.register("queue")


def test_a_section_whose_result_has_the_wrong_type_fails_naming_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = Section("queue", lambda history, ctx: {"max_depth": "deep", "mean_depth": None})
    monkeypatch.setitem(SECTIONS._entries, "queue", wrong)
    with pytest.raises(pydantic.ValidationError) as raised:
        analyse(write_history(tmp_path))
    assert raised.value.errors()[0]["loc"][:2] == ("queue", "max_depth")


def test_a_section_with_a_key_its_type_does_not_declare_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = Section("backpressure", lambda history, ctx: {"events": 0, "first_engaged_s": None, "evnets": 1})
    monkeypatch.setitem(SECTIONS._entries, "backpressure", extra)
    with pytest.raises(pydantic.ValidationError, match="backpressure.evnets"):
        analyse(write_history(tmp_path))


def test_an_absent_section_is_left_out_and_a_null_one_is_kept(tmp_path: Path) -> None:
    analysis = analyse(write_history(tmp_path))
    # market is kept as null; fairness (absent_when_none) is left out.
    assert analysis.summary["market"] is None and analysis.result.market is None
    assert "fairness" not in analysis.summary and "fairness" not in analysis.result.model_fields_set


def _same_json(value: Any) -> str:
    """The text json.dumps writes, key order and int/float kept (3 and 3.0 differ)."""
    return json.dumps(value, indent=1)


@pytest.mark.parametrize("example", SHIPPED)
def test_shipped_examples_keys_are_the_registry_s_and_the_types_give_back_the_same_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str) -> None:
    computed: list[dict[str, Any]] = []
    validate = Summary.model_validate

    def keep(value: dict[str, Any]) -> Summary:
        # The sections' own values, before their types (a section typed already, the market's, as it dumps).
        computed.append(json.loads(json.dumps(value, default=lambda typed: typed.model_dump(
            mode="json", exclude_unset=True))))
        return validate(value)

    monkeypatch.setattr(sections_module.Summary, "model_validate", keep)
    result = run(load_scenario(EXAMPLES / f"{example}.toml", ['run.duration="2s"']), tmp_path / "run",
                 write_report=False)
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    keys = [key for key in written if key not in RUNNER_KEYS]
    present = [key for key, section in SECTIONS.items()
               if not section.absent_when_none or key in result.analysis.result.model_fields_set]
    assert keys == present, f"{example}: summary.json keys differ from the registry's"
    assert set(keys) <= set(SECTIONS)
    # Written from the typed models, key for key and digit for digit what the sections computed.
    assert len(computed) == (2 if example.startswith("cross-chain") else 1)  # and the destination chain's
    assert computed[-1]["scenario"] == written["scenario"]
    assert _same_json({key: written[key] for key in keys}) == _same_json(computed[-1])


def test_the_shipped_schema_is_what_the_section_types_generate() -> None:
    assert summary_schema_text() == generated_schema_text()
    properties = json.loads(generated_schema_text())["properties"]
    assert list(properties) == list(Summary.model_fields)
    assert set(SECTIONS) | RUNNER_KEYS == set(properties)


def test_events_of_takes_only_event_kinds(tmp_path: Path) -> None:
    from test_analysis_history import event

    from msgstorm.analysis._common import events_of
    from msgstorm.history.events import EventKind

    history = write_history(tmp_path, events=[event(2, "base_fee", value=1.5), event(1, "base_fee", value=1.0),
                                              event(3, "queue_depth", value=4.0)])
    rows = events_of(history, EventKind.BASE_FEE)
    assert rows.t.tolist() == [1, 2] and rows.value.tolist() == [1.0, 1.5]
    with pytest.raises(TypeError, match="EventKind members, not 'base_fee'"):
        events_of(history, "base_fee")  # type: ignore[arg-type]


@pytest.mark.parametrize(("target", "simulated"), [("sim", True), (None, True), ("nats", False), ("anvil", False)])
def test_one_is_simulated_for_histories_and_summaries(tmp_path: Path, target: str | None, simulated: bool) -> None:
    from msgstorm.history.schema import is_simulated

    assert is_simulated(target) is simulated
    if target is not None:
        assert write_history(tmp_path, target=target).is_simulated is simulated


def test_live_status_codes_name_the_history_s_statuses() -> None:
    from msgstorm.history.schema import STATUSES
    from msgstorm.live import recorder
    from msgstorm.live.chain import record

    assert [STATUSES[code] for code in (recorder._COMMITTED, recorder._LOST, recorder._PENDING, recorder._UNSENT)] == [
        "committed", "lost", "pending", "unsent"]
    assert [STATUSES[code] for code in (record.COMMITTED, record.REJECTED, record.PENDING, record.LOST, record.UNSENT,
                                        record.DROPPED)] == ["committed", "rejected", "pending", "lost", "unsent",
                                                             "dropped"]


@pytest.mark.slow
def test_mypy_checks_what_a_report_reads_of_a_section(tmp_path: Path) -> None:
    """Reports read typed fields: a misspelt field or a section used as the wrong type is a
    mypy error, where a string key read with ``.get`` gave None and showed nothing."""
    from conftest import mypy_on

    snippet = tmp_path / "reader.py"
    snippet.write_text(
        "from msgstorm.analysis.summary_model import Summary\n"
        "\n"
        "\n"
        "def depth(summary: Summary) -> float | None:\n"
        "    return summary.queue.max_depth\n"
        "\n"
        "\n"
        "def misspelt(summary: Summary) -> float | None:\n"
        "    return summary.queue.max_dpeth\n"
        "\n"
        "\n"
        "def wrong_type(summary: Summary) -> str:\n"
        "    return summary.messages.committed\n"
    )
    errors, out, status = mypy_on(snippet)
    assert status == 1
    assert any('reader.py:9: error: "Queue" has no attribute "max_dpeth"' in line for line in errors), out
    assert any("reader.py:13: error: Incompatible return value type" in line for line in errors), out
    assert not any("reader.py:5:" in line for line in errors), out
