"""Prioritized Level Replay, robust form (Jiang et al. 2021), and ACCEL (Parker-Holder et al.
2022) on top of it.

PLR keeps a buffer of at most ``buffer_size`` levels with a score each (for an RL agent the
positive value loss it had there, how much it still has to learn, or with
``score="max_regret"`` the best return ever seen there minus the mean value over the
episode's steps, Jiang et al.'s MaxMC; for MAML the adapted policy's shortfall). Each batch
is, with probability ``replay_prob`` (once the buffer can fill a batch), levels replayed from
the buffer; otherwise new levels from the distribution, whose scores decide whether they
enter the buffer (replacing the lowest-scored level when it is full). Robust PLR
(``robust=True``) trains only on replayed levels: new ones are only evaluated. Replay draws
each level with

    P = (1 - staleness_coef) * P_score + staleness_coef * P_stale
    P_score(i) ∝ (1 / rank(score_i)) ** (1 / temperature)     (rank 1: the highest score)
    P_stale(i) ∝ c - c_i                                       (batches since i was last scored)

ACCEL replaces new random levels by edits: after each replay batch the replayed levels are
edited (``edit``, small changes that keep a level valid) and the edits are evaluated in the
next batch, entering the buffer by score like new levels. New random levels still come when
nothing is waiting to be evaluated and no replay is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from metarobust.envs.tasks import TaskDistribution
from metarobust.generators.base import Generator, Proposal, Task


class PLR(Generator):
    """Prioritized Level Replay over ``distribution``'s tasks, robust (new levels only scored)
    or not (new levels trained on too); see the module doc."""

    # What the buffer keeps beside each level's score, by name, as jaxued's level sampler
    # keeps its level extras: the value a level starts with, and how a newly observed value
    # combines with the kept one. MaxMC (score max_regret) needs each level's best return.
    EXTRAS: ClassVar[dict[str, tuple[float, Callable[[float, float], float]]]] = {
        "best_returns": (-math.inf, max),
    }

    def __init__(
        self,
        distribution: TaskDistribution,
        rng: np.random.Generator,
        *,
        buffer_size: int = 256,
        replay_prob: float = 0.5,
        temperature: float = 0.3,
        staleness_coef: float = 0.3,
        robust: bool = True,
        score: str = "value_loss",
    ) -> None:
        super().__init__(distribution, rng)
        self.robust, self.score = robust, score
        self.buffer_size, self.replay_prob = buffer_size, replay_prob
        self.temperature, self.staleness_coef = temperature, staleness_coef
        self.levels: list[Task] = []
        self.scores: list[float] = []
        self.last_scored: list[int] = []  # the batch count when each level was last scored
        self.extras: dict[str, list[float]] = {name: [] for name in self.EXTRAS}
        self.batches = 0  # batches observed so far

    def replay_probabilities(self) -> np.ndarray:
        """Each buffered level's chance to be drawn in a replay."""
        scores = np.asarray(self.scores, np.float64)
        ranks = np.empty(len(scores))
        ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
        by_score = (1.0 / ranks) ** (1.0 / self.temperature)
        by_score /= by_score.sum()
        stale = self.batches - np.asarray(self.last_scored, np.float64)
        if stale.sum() > 0:
            by_staleness = stale / stale.sum()
        else:  # every level scored in the last batch
            by_staleness = np.full(len(stale), 1.0 / len(stale))
        return (1.0 - self.staleness_coef) * by_score + self.staleness_coef * by_staleness

    def propose(self, n: int) -> Proposal:
        if len(self.levels) >= n and self.rng.random() < self.replay_prob:
            picks = self.rng.choice(len(self.levels), size=n, p=self.replay_probabilities())
            return Proposal([self.levels[i] for i in picks], train=True, replayed=tuple(picks))
        return Proposal(self.distribution.sample(n, self.rng), train=not self.robust)

    def combined(self, proposal: Proposal, name: str, values: np.ndarray) -> np.ndarray:
        """Each proposed level's extra ``name``: its observed ``values``, combined with the
        buffer's for a replayed level (``best_returns``: the better of the two)."""
        out = np.asarray(values, np.float64).copy()
        if proposal.replayed is not None:
            _, combine = self.EXTRAS[name]
            kept = self.extras[name]
            out = np.array(
                [combine(v, kept[i]) for v, i in zip(out, proposal.replayed, strict=True)]
            )
        return out

    def observe(
        self, proposal: Proposal, scores: np.ndarray, **extras: np.ndarray
    ) -> dict[str, float]:
        """``extras`` (by ``EXTRAS`` name, one value per proposed level; ``combined``'s) are
        kept with the levels; an extra not given starts at its initial value."""
        self.batches += 1
        scores = np.asarray(scores, np.float64)
        values = {
            name: extras[name].tolist() if name in extras else [start] * len(scores)
            for name, (start, _) in self.EXTRAS.items()
        }
        if proposal.replayed is not None:
            for k, (i, score) in enumerate(zip(proposal.replayed, scores.tolist(), strict=True)):
                self.scores[i], self.last_scored[i] = score, self.batches
                for name, (_, combine) in self.EXTRAS.items():  # a level drawn twice
                    self.extras[name][i] = combine(self.extras[name][i], values[name][k])
        else:
            for k, (level, score) in enumerate(zip(proposal.tasks, scores.tolist(), strict=True)):
                self._insert(level, score, {name: v[k] for name, v in values.items()})
        return {
            "generator/buffer_size": float(len(self.levels)),
            "generator/buffer_mean_score": float(np.mean(self.scores)) if self.scores else 0.0,
            "generator/replayed": float(proposal.replayed is not None),
        }

    def _insert(self, level: Task, score: float, extras: dict[str, float]) -> None:
        """Add a scored level with its extras, evicting the lowest-scored one if the buffer
        is full."""
        if len(self.levels) < self.buffer_size:
            self.levels.append(level)
            self.scores.append(score)
            self.last_scored.append(self.batches)
            for name, value in extras.items():
                self.extras[name].append(value)
            return
        low = int(np.argmin(self.scores))
        if score > self.scores[low]:
            self.levels[low], self.scores[low], self.last_scored[low] = level, score, self.batches
            for name, value in extras.items():
                self.extras[name][low] = value

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "levels": self.levels,
            "scores": self.scores,
            "last_scored": self.last_scored,
            **self.extras,
            "batches": self.batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.levels = [dict(level) for level in state["levels"]]
        self.scores = [float(s) for s in state["scores"]]
        self.last_scored = [int(c) for c in state["last_scored"]]
        # a checkpoint from before an extra existed starts its levels at the initial value
        self.extras = {
            name: [float(v) for v in state.get(name, [start] * len(self.levels))]
            for name, (start, _) in self.EXTRAS.items()
        }
        self.batches = int(state["batches"])


class ACCEL(PLR):
    """PLR (robust by default) whose replayed levels are edited into the next candidates
    (module doc); ``edit(level, rng)`` returns a slightly changed, valid level."""

    def __init__(
        self,
        distribution: TaskDistribution,
        rng: np.random.Generator,
        edit: Callable[[Task, np.random.Generator], Task],
        **plr: Any,
    ) -> None:
        super().__init__(distribution, rng, **plr)
        self.edit = edit
        self.pending: list[Task] = []  # edits waiting to be evaluated

    def propose(self, n: int) -> Proposal:
        if self.pending:
            batch, self.pending = self.pending[:n], self.pending[n:]
            if len(batch) < n:
                batch += self.distribution.sample(n - len(batch), self.rng)
            return Proposal(batch, train=not self.robust)
        return super().propose(n)

    def observe(
        self, proposal: Proposal, scores: np.ndarray, **extras: np.ndarray
    ) -> dict[str, float]:
        metrics = super().observe(proposal, scores, **extras)
        if proposal.replayed is not None:
            self.pending += [self.edit(level, self.rng) for level in proposal.tasks]
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pending": self.pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pending = [dict(level) for level in state["pending"]]
