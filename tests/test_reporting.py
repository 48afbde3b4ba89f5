"""Interval estimates of a study (rliable) on scores whose answers are known."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from metarobust.errors import ConfigError
from metarobust.reporting import (
    improvement_probabilities,
    iqm_intervals,
    probability_of_improvement,
    write_intervals,
)


def test_the_iqm_is_the_mean_of_the_middle_half():
    scores = {"a": np.arange(8.0).reshape(2, 4)}  # 0..7: the middle half is 2, 3, 4, 5
    (interval,) = iqm_intervals(scores).values()
    assert interval.point == pytest.approx(3.5)
    assert interval.low <= 3.5 <= interval.high


def test_identical_runs_have_no_spread():
    scores = {"a": np.full((3, 5), 2.0)}
    interval = iqm_intervals(scores)["a"]
    assert (interval.point, interval.low, interval.high) == pytest.approx((2.0, 2.0, 2.0))


def test_probability_of_improvement_on_known_orderings():
    base = np.zeros((3, 4))
    better = improvement_probabilities(
        {"base": base, "above": base + 1.0, "same": base.copy(), "below": base - 1.0}, "base"
    )
    assert better["above"].point == pytest.approx(1.0)
    assert better["same"].point == pytest.approx(0.5)  # ties count half
    assert better["below"].point == pytest.approx(0.0)
    assert "base" not in better


def test_the_probability_of_improvement_is_rliables():
    from rliable import metrics

    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, (3, 6)).astype(float), rng.integers(0, 4, (5, 6)).astype(float)
    assert probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y)
    )


def test_write_intervals_writes_the_table_the_csv_and_the_plot(tmp_path):
    rng = np.random.default_rng(0)
    scores = {"uniform": rng.normal(0, 1, (3, 10)), "plr": rng.normal(1, 1, (3, 10))}
    table = write_intervals(tmp_path, scores, baseline="uniform", metric="return")
    assert "| plr |" in table and "3 runs x 10 tasks" in table
    with (tmp_path / "intervals.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert rows["uniform"]["p_improvement"] == ""
    assert 0.5 < float(rows["plr"]["p_improvement"]) <= 1.0
    low, iqm, high = (float(rows["plr"][k]) for k in ("iqm_low", "iqm", "iqm_high"))
    assert low <= iqm <= high
    assert (tmp_path / "intervals.png").stat().st_size > 0
    # seeded: written twice, the same numbers
    first = (tmp_path / "intervals.csv").read_text()
    write_intervals(tmp_path, scores, baseline="uniform", metric="return")
    assert (tmp_path / "intervals.csv").read_text() == first


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((0, 3)), np.array([[1.0, np.nan]])])
def test_bad_scores_get_one_line(bad):
    with pytest.raises(ConfigError, match="scores of a: expected a finite"):
        iqm_intervals({"a": bad})


def test_improvement_needs_the_same_runs_and_tasks():
    with pytest.raises(ConfigError, match="same runs and tasks"):
        improvement_probabilities({"a": np.zeros((3, 4)), "b": np.zeros((2, 4))}, "a")
