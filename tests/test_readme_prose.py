"""Every number the README states comes from a command it names, and a test compares it.

The README's tour goes on in docs/examples.md ("The tour, continued"): its sections are read
and checked as the README's. A number in the prose (outside its code blocks) must be one of: printed in an excerpt
of its own section, set in an example file the section names, or accounted for in
``PROSE_NUMBERS`` with where it comes from: the name of the test that runs the command and
compares it, or how it follows from the example's file. Machine timings and measured live
figures are not stated in the README: it links to the pages that record them with their
command (docs/performance.md, docs/live.md).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES_PAGE = ROOT / "docs" / "examples.md"
TOUR_CONTINUED = "## The tour, continued"
TESTS = Path(__file__).resolve().parent

_PROSE_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")

# Per README section (the first example its heading names, else its heading): the numbers of
# its prose that neither its excerpts nor its examples' files hold, and where each comes from
# (a test's name, which must exist, or how it follows from the file).
PROSE_NUMBERS: dict[str, dict[str, str]] = {
    "Quick start": {"3.11": "test_the_python_the_readme_asks_for_is_the_one_the_package_requires",
                    "12": "examples/quickstart.toml: three regions of four nodes"},
    "Live targets": {"17": "the Java .ci/run installs for Kafka (openjdk-17-jre-headless)"},
    "A tour of the examples": {"64": "x86-64"},
    "flash-crash": {"15": "the file's region cut: at 11 s for 4 s"},
    "venue-partial": {**{n: "test_the_tour_whole_rule_on_the_venue_crash_is_what_its_command_gives" for n in ("55", "10.3")},
                      "1,265": "test_the_tour_no_ops_on_the_mark_are_what_its_command_gives",
                      **{n: "test_the_tour_funding_and_thinning_book_on_the_venue_crash_are_what_their_commands_give"
                         for n in ("5.01", "135,423", "127,769", "0.18", "3.54", "3.03", "14.16", "22,108", "45,965")}},
    "black-thursday": {"98.5": "test_the_readme_fall_in_bad_debt_is_the_two_black_thursday_excerpts"},
    "byzantine": {"30": "the file's faults: 10 s + 20 s",
                  "1.12": "test_the_tour_gives_the_censored_liquidations_latency_the_two_runs_give",
                  "0.58": "test_the_tour_gives_the_censored_liquidations_latency_the_two_runs_give"},
    "front-running": {"400,000": "the file: a whale's notional", "4": "10 bps per million x 400,000",
                      "160": "4 bps of 400,000",
                      **{n: "test_the_tour_gives_the_races_won_the_ordering_table_shows" for n in ("19", "9")}},
    "self-healing": {n: "test_the_tour_throttling_table_is_what_the_two_runs_give"
                     for n in ("9.63", "420,825,433", "24.529", "9,846", "13,815")},
    "solana-spam": {"4,000": "the file: workers x service", "7.1": "the excerpt's 7.086%",
                    "2.9": "test_the_tour_solana_spam_shedding_run_is_the_one_its_file_header_names"},
    "leverage-latency": {"305": "test_the_readme_safe_leverage_excerpt_is_what_its_command_prints",
                         "95": "safe-leverage's default --confidence",
                         "400": "test_repeated_searches_answer_at_or_below_the_true_limit_with_the_confidence"},
    "black-thursday-lane": {"158,640,702": "test_the_tour_bad_debt_without_the_lane_is_the_run_docs_examples_md_names"},
    "cross-chain": {"2.3": "test_the_tour_cost_of_the_relay_wait_is_the_collateral_excerpts_ratio"},
    "ramp": {n: "the file's step ramp (1000/s to 10000/s) and the excerpt's knee step" for n in
             ("1,000", "10,000", "6,000")},
    "rollup-outage": {n: "test_the_tour_guard_table_is_what_the_two_guarded_runs_give"
                      for n in ("6,873,659", "3,188", "1,594", "6,776,204", "3,138", "1,569", "25")},
    "venue-cross": {n: "test_the_tour_cross_book_without_correlation_is_what_its_command_gives" for n in ("53", "12,077")},
    "matching-engine": {"22,000": "the file: 1 / median service 40 us (about)", "2,000": "the file's ramp step",
                        "24,000": "the file's last step", "1.6": "CPU time on this machine (docs/performance.md)",
                        "64": "x86-64"},
}


def _tour_text() -> str:
    """The README, then the tour's continuation in docs/examples.md (up to the page's next
    section)."""
    page = EXAMPLES_PAGE.read_text(encoding="utf-8")
    start = page.index(TOUR_CONTINUED)
    return README.read_text(encoding="utf-8") + "\n" + page[start:page.index("\n## ", start + 1)]


def _sections() -> dict[str, str]:
    """The README and the tour's continuation cut at their headings: key (the first example
    a heading names, else the heading) -> the heading and body."""
    sections: dict[str, str] = {}
    for section in re.split(r"^#{1,3} ", _tour_text(), flags=re.M)[1:]:
        head = section.split("\n", 1)[0]
        names = re.findall(r"examples/([\w-]+)\.(?:toml|yaml)", head)
        key = names[0] if names else head.strip()
        assert key not in sections, f"two sections of the tour are keyed {key!r}"
        sections[key] = section
    return sections


def prose_numbers(section: str) -> list[str]:
    """The numbers of a section's prose that its excerpts and the example files it names do not hold."""
    head, body = section.split("\n", 1)
    shown = " ".join(re.findall(r"```\w*\n(.*?)```", body, re.S))
    prose = re.sub(r"```\w*\n.*?```", " ", body, flags=re.S)
    prose = re.sub(r"`[^`]*`|\[[^\]]*\]\([^)]*\)", " ", head + " " + prose)  # commands, code and links
    files = " ".join((ROOT / "examples" / name).read_text(encoding="utf-8")
                     for name in set(re.findall(r"examples/([\w-]+\.(?:toml|yaml))", section))
                     if (ROOT / "examples" / name).exists()).replace("_", "")
    left = []
    for number in _PROSE_NUMBER.findall(prose):
        number = number.rstrip(",")
        plain = number.replace(",", "")
        if re.search(rf"(?<![\d.,]){re.escape(number)}(?!\d|,\d|\.\d)", shown):
            continue
        if re.search(rf"(?<![\d.]){re.escape(plain)}(?![\d])", files):
            continue
        left.append(number)
    return left


def test_every_number_of_the_readme_prose_is_printed_configured_or_accounted_for() -> None:
    found = {key: prose_numbers(section) for key, section in _sections().items()}
    assert "Quick start" in found and "front-running" in found and "leverage-latency" in found
    assert "The tour, continued" in found and "rollup-outage" in found and "Every other example" in found
    unaccounted = {key: numbers for key, numbers in
                   ((key, [n for n in numbers if n not in PROSE_NUMBERS.get(key, {})]) for key, numbers in found.items())
                   if numbers}
    assert unaccounted == {}, f"README numbers no command, excerpt or file gives: {unaccounted}"
    stale = {key: sorted(set(numbers) - set(found.get(key, []))) for key, numbers in PROSE_NUMBERS.items()}
    assert all(not numbers for numbers in stale.values()), f"accounted numbers the prose no longer has: {stale}"


def test_each_number_accounted_by_a_test_names_one_that_exists() -> None:
    defined = set(re.findall(r"^def (test_\w+)\(", "\n".join(path.read_text(encoding="utf-8")
                                                             for path in TESTS.glob("test_*.py")), re.M))
    named = {source for numbers in PROSE_NUMBERS.values() for source in numbers.values() if source.startswith("test_")}
    assert named and named - defined == set()


def test_a_number_neither_shown_nor_configured_is_found() -> None:
    section = ("`examples/quickstart.toml`: x\n\nIt took 27 s and 1.64 s.\n\n"
               "```\n│ latency │ 1.64 s │\n```\n")
    assert prose_numbers(section) == ["27"]
    # A number the excerpt holds only as part of a longer one is not shown.
    assert prose_numbers("h\n\n1,715 and 15\n\n```\n│ x │ 1,715.2 │ 2,15 │\n```\n") == ["1,715", "15"]


def test_the_python_the_readme_asks_for_is_the_one_the_package_requires() -> None:
    said = re.search(r"Python ≥ (\d+\.\d+)", README.read_text(encoding="utf-8"))
    required = re.search(r'^requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert said is not None and required is not None and said.group(1) == required.group(1)


def _safe_leverage_excerpt() -> tuple[list[str], list[str]]:
    """The README's safe-leverage command (its arguments) and the lines it shows."""
    block = re.search(r"```\n\$ msgstorm safe-leverage (.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None, "the README's safe-leverage excerpt"
    command, *lines = block.group(1).replace("\\\n", "").splitlines()
    return ["safe-leverage", *shlex.split(command)], lines


@pytest.mark.slow
def test_the_readme_safe_leverage_excerpt_is_what_its_command_prints(readme_safe_leverage: tuple[list[str], Any]) -> None:
    """The command's lines as the README shows them, in order, and the runs the prose counts
    (the session's run of the command, ``readme_safe_leverage``)."""
    args, lines = _safe_leverage_excerpt()
    ran, result = readme_safe_leverage
    assert ran == args, "the command run is the one the README writes"
    assert result.exit_code == 0, result.output
    printed = [line.rstrip() for line in result.output.splitlines()]
    at = 0
    for line in lines:
        assert line.rstrip() in printed[at:], f"{line!r} not printed (after line {at}):\n{result.output}"
        at = printed.index(line.rstrip(), at) + 1
    said = re.search(r"\((\d+) runs; \[how long", " ".join(README.read_text(encoding="utf-8").split()))
    assert said is not None
    assert re.search(rf"^{said.group(1)} runs in ", result.output, re.M), result.output


def _safe_leverage_answers() -> list[tuple[str, str, str | None]]:
    """The README's safe-leverage excerpt as (latency, answer, lowest leverage shown over budget
    or None), one per ``--vary`` value, in the order printed."""
    _, lines = _safe_leverage_excerpt()
    answers: list[tuple[str, str, str | None]] = []
    for line in lines:
        answer = re.match(r" network\.latency = \{'[^']+': '(\d+m?s)'\}: ([\d.]+)x shown within budget", line)
        boundary = re.match(r"  boundary at \d+%: between [\d.]+x \(shown within budget\) and ([\d.]+)x \(shown over\)", line)
        if answer:
            answers.append((answer.group(1), answer.group(2), None))
        elif boundary:
            answers[-1] = (*answers[-1][:2], boundary.group(1))
    return answers


def test_the_readme_safe_leverage_prose_is_what_its_excerpt_answers() -> None:
    """What the prose says of the curves is what the excerpt (which the slow test holds to the
    command) prints: each latency's answer, and the boundary's other end where two latencies
    answer alike. A claim that the answer falls as the latency grows needs answers that fall."""
    answers = _safe_leverage_answers()
    assert [latency for latency, *_ in answers] == ["20ms", "1s", "2s"]
    text = " ".join(_sections()["leverage-latency"].split())
    prose = re.sub(r"```.*?```", " ", text)
    if re.search(r"the longer .*?, the lower the leverage", prose):
        shown = [float(answer) for _, answer, _ in answers]
        assert all(a > b for a, b in zip(shown, shown[1:])), f"the answers do not fall with the latency: {shown}"
    top = re.search(r"At 20 ms every leverage of the range is shown within budget, up to its top, ([\d.]+)x\.", prose)
    assert top is not None and top.group(1) == answers[0][1] and answers[0][2] is None
    assert top.group(1) == re.search(r"--range [\d.]+:([\d.]+)", text).group(1)  # type: ignore[union-attr]
    same = re.search(r"At 1 s and at 2 s the answer is the same, ([\d.]+)x: .*? the lowest leverage shown over "
                     r"budget, from ([\d.]+)x down to ([\d.]+)x", prose)
    assert same is not None, "the README's sentence of the 1 s and 2 s curves"
    assert [answers[1][1], answers[2][1]] == [same.group(1)] * 2
    assert [answers[1][2], answers[2][2]] == [same.group(2), same.group(3)]


def test_the_tour_guard_table_names_what_the_terminal_row_counts() -> None:
    """rollup-outage's guard table heads its columns with the words of the terminal's
    ``uptime guard`` row (a summary built by hand, printed as ``msgstorm run`` prints it)."""
    from test_docs import table_rows, terminal_lines
    from test_report_compare import hand_summary

    summary = hand_summary(sentinel={"grace_s": 3600.0, "health_factor_bound": None, "blocked": 3, "after_pause": 2,
                                     "let_through": 1, "bad_debt": 5.0})
    [row] = [value for label, value in table_rows(terminal_lines(summary)).items() if label.startswith("uptime guard")]
    words = [word.strip(" (),") for word in re.split(r"\d+", row) if word.strip(" (),")]
    assert words == ["blocked", "executed after", "let through", "bad debt"]
    header = re.search(r"^\| guard \(the two commands in the file's header\) \|(.*)\|$",
                       _sections()["rollup-outage"], re.M)
    assert header is not None
    assert sorted(cell.strip() for cell in header.group(1).split("|")) == sorted(words)


def test_a_quantity_the_terminal_does_not_print_is_said_to_come_from_summary_json(example_run: Any) -> None:
    """venue-partial's slippage is in summary.json, not the terminal: the prose quoting it says
    so and names its key, which the run's summary has."""
    from test_docs import terminal_lines

    result = example_run("venue-partial")
    assert "slippage" not in "\n".join(terminal_lines(result.summary))
    assert set(result.summary["market"]["slippage_bps"]) >= {"p50", "p99"}
    prose = re.sub(r"```.*?```", " ", " ".join(_sections()["venue-partial"].split()))
    [sentence] = [s for s in re.split(r"(?<=\.) ", prose) if "slippage p50 / p99" in s]
    assert "`summary.json` (the terminal does not print it)" in sentence and "(`market.slippage_bps`)" in sentence


@pytest.mark.slow
def test_the_tour_no_ops_on_the_mark_are_what_its_command_gives(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """venue-partial judged on the mark: the no-ops the prose gives (before, the tour's excerpt;
    after, the command it names), and why: most are partial calls judged past the line on a mark
    below the index that find nothing to close at the index."""
    import msgstorm
    from msgstorm.market import reactor

    text = " ".join(_sections()["venue-partial"].split())
    said = re.search(r"`--set '(market\.mark=\{[^']+\})'` .*?, and the no-ops go from ([\d,]+) to ([\d,]+): once the "
                     r"calls have closed enough longs, the mark sits below the index", text)
    assert said is not None, "the README's sentence of the mark price on venue-partial"
    assert f"no-op {said.group(2)}," in text  # the tour's excerpt of the example as it is
    nothing_to_close: list[int] = []
    call = reactor.MarketReactor._call

    def spied(self: Any, t: int, msg_id: int, account: int, keeper: Any, price: float) -> Any:
        outcome, done = call(self, t, msg_id, account, keeper, price)
        if outcome == "recovered":
            nothing_to_close.append(msg_id)
        return outcome, done

    monkeypatch.setattr(reactor.MarketReactor, "_call", spied)
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "venue-partial.toml", [said.group(1)]),
                          tmp_path / "mark", write_report=False)
    market = result.summary["market"]
    assert f"{market['liquidations']['no_op']:,}" == said.group(3)
    assert len(nothing_to_close) > 0.9 * market["liquidations"]["no_op"]
    marks = {row["msg_id"]: row for row in result.history.table("marks").to_pylist()}
    below = [marks[msg_id]["mark"] < marks[msg_id]["index"] for msg_id in nothing_to_close]
    assert sum(below) > 0.9 * len(below)
    sides = {row["account"]: row["side"] for row in result.history.table("accounts").to_pylist()}
    longs = [sides[marks[msg_id]["account"]] == 1 for msg_id in nothing_to_close]
    assert sum(longs) > 0.9 * len(longs)
