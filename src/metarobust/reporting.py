"""Reporting a study as the field does (rliable; Agarwal et al. 2021, "Deep RL at the edge of
the statistical precipice"): the interquartile mean (IQM) of every run x task score with a 95 %
stratified-bootstrap confidence interval, and the probability that a method improves on a
baseline, with its interval.

A method's scores are a ``[runs, tasks]`` array: runs are seeds, tasks whatever the study
scores each run on (held-out tasks, levels, grid cells). The bootstrap resamples runs within
each task (rliable's stratified bootstrap), seeded, so a summary is the same every time it is
written. rliable is in the ``studies`` extra (``pip install -e ".[studies]"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from metarobust.errors import ConfigError
from metarobust.plotting import plot_intervals
from metarobust.runs.outputs import write_csv

REPS = 2000  # bootstrap resamples
CONFIDENCE = 0.95
SEED = 0
CSV_NAME, MD_NAME, PNG_NAME = "intervals.csv", "intervals.md", "intervals.png"


class Interval(NamedTuple):
    """A point estimate and its confidence interval (a plain tuple to plots)."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.point:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError:
        raise ConfigError('interval estimates need rliable: pip install -e ".[studies]"') from None
    return library, metrics


def _checked(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    checked = {}
    for method, array in scores.items():
        array = np.asarray(array, np.float64)
        if array.ndim != 2 or array.size == 0 or not np.isfinite(array).all():
            raise ConfigError(
                f"scores of {method}: expected a finite [runs, tasks] array, got shape "
                f"{array.shape}"
            )
        checked[method] = array
    return checked


@contextmanager
def _seeded_global_numpy() -> Iterator[None]:
    """rliable 1.2's stratified bootstrap draws from NumPy's global generator (it ignores its
    ``random_state``): seed that for the call, and give the caller's state back."""
    state = np.random.get_state()
    np.random.seed(SEED)
    try:
        yield
    finally:
        np.random.set_state(state)


def _intervals(estimates: tuple[dict, dict]) -> dict[str, Interval]:
    points, bounds = estimates
    return {
        name: Interval(float(points[name][0]), float(bounds[name][0][0]), float(bounds[name][1][0]))
        for name in points
    }


def iqm_intervals(scores: Mapping[str, np.ndarray]) -> dict[str, Interval]:
    """Per method, the IQM of its ``[runs, tasks]`` scores and its 95 % interval."""
    library, metrics = _rliable()
    with _seeded_global_numpy():
        return _intervals(
            library.get_interval_estimates(
                _checked(scores),
                lambda x: np.array([metrics.aggregate_iqm(x)]),
                reps=REPS,
                confidence_interval_size=CONFIDENCE,
            )
        )


def improvement_probabilities(
    scores: Mapping[str, np.ndarray], baseline: str
) -> dict[str, Interval]:
    """Per method other than ``baseline``: the probability that it scores above the baseline
    on a task (ties count half; rliable's), with its 95 % interval. Both need the same runs
    and tasks."""
    library, _ = _rliable()
    scores = _checked(scores)
    pairs = {}
    for method, array in scores.items():
        if method == baseline:
            continue
        if array.shape != scores[baseline].shape:
            raise ConfigError(
                f"scores of {method} {array.shape} and {baseline} {scores[baseline].shape}: "
                "a probability of improvement needs the same runs and tasks"
            )
        pairs[method] = (array, scores[baseline])
    if not pairs:
        return {}
    with _seeded_global_numpy():
        return _intervals(
            library.get_interval_estimates(
                pairs,
                lambda x, y: np.array([probability_of_improvement(x, y)]),
                reps=REPS,
                confidence_interval_size=CONFIDENCE,
            )
        )


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run of ``x`` and a run of ``y`` on the same task,
    averaged over tasks (``[runs, tasks]`` each): rliable's ``probability_of_improvement``
    (the Mann-Whitney U over ``m * n`` per task), in one broadcast instead of a SciPy call per
    task, which a bootstrap of thousands of resamples over hundreds of tasks cannot afford."""
    above = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float((above + 0.5 * ties).mean())


def write_intervals(
    out: Path, scores: Mapping[str, np.ndarray], *, baseline: str, metric: str
) -> str:
    """``intervals.csv``, ``intervals.md`` and ``intervals.png`` in ``out``: every method's
    IQM of ``metric`` with its interval, and its probability of improving on ``baseline``;
    returns the Markdown table."""
    iqm = iqm_intervals(scores)
    better = improvement_probabilities(scores, baseline)
    runs, tasks = next(iter(scores.values())).shape
    rows = [
        [method, runs, tasks, i.point, i.low, i.high,
         *((better[method].point, better[method].low, better[method].high)
           if method in better else ("", "", ""))]
        for method, i in iqm.items()
    ]  # fmt: skip
    write_csv(
        out / CSV_NAME,
        ["method", "runs", "tasks", "iqm", "iqm_low", "iqm_high",
         "p_improvement", "p_improvement_low", "p_improvement_high"],
        rows,
    )  # fmt: skip
    lines = [
        f"{metric}: interquartile mean over {runs} runs x {tasks} tasks with 95 % "
        f"stratified-bootstrap intervals ({REPS} resamples); P(improvement) over {baseline}",
        "",
        f"| method | IQM [95 % CI] | P({baseline} < method) [95 % CI] |",
        "| --- | --- | --- |",
    ]
    for method, interval in iqm.items():
        lines.append(f"| {method} | {interval} | {better.get(method, '-')} |")
    table = "\n".join(lines) + "\n"
    (out / MD_NAME).write_text(table)
    plot_intervals(out / PNG_NAME, iqm, better, metric=metric, baseline=baseline)
    return table
