"""A validator network's per-validator numbers (``analysis/validators.py``), worked by hand."""

from __future__ import annotations

from msgstorm.analysis.validators import height_lags, longest_halt

S = 1_000_000_000


def test_a_validator_that_stops_committing_lags_by_the_heights_the_others_add() -> None:
    # a and b commit heights 5, 6, 7 at 1, 2, 3 s; c commits 5 at 1 s, then nothing.
    commits = [(1 * S, "a", 5), (1 * S, "b", 5), (1 * S, "c", 5), (2 * S, "a", 6), (2 * S, "b", 6),
               (3 * S, "b", 7), (3 * S, "a", 7)]
    # After 3 s the highest is 7 and c is at 5: 2 heights behind; a and b never behind at
    # any time once every commit of that time is in (a's 7 and b's 7 both at 3 s).
    assert height_lags(commits, ["a", "b", "c"]) == {"a": 0, "b": 0, "c": 2}


def test_the_lag_is_measured_after_every_commit_of_a_time_and_from_the_first_height_seen() -> None:
    # b is one height behind a between 1 s and 1.5 s; the run's heights start at 10, so
    # neither lags 10 at its first commit.
    commits = [(1 * S, "a", 10), (1 * S, "b", 10), (S + S // 4, "a", 11), (S + S // 2, "b", 11)]
    assert height_lags(commits, ["a", "b"]) == {"a": 0, "b": 1}
    # The same commits in another order give the same answer.
    assert height_lags(list(reversed(commits)), ["a", "b"]) == {"a": 0, "b": 1}


def test_the_longest_halt_is_the_widest_gap_between_commits_or_to_the_end() -> None:
    times = [1 * S, 2 * S, 2 * S, 6 * S, 7 * S]  # the gap 2 s -> 6 s is the widest (4 s)
    assert longest_halt(times) == (2 * S, 6 * S)
    assert longest_halt(times, t_end=12 * S) == (7 * S, 12 * S)  # 5 s after the last commit is wider
    assert longest_halt([]) is None
    assert longest_halt([3 * S]) is None
