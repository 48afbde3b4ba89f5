"""What a sampler call acts with: each player's policy state, and which player learns.

A ``PolicyState`` is one policy as the workers run it: CPU copies of its parameters and its
normaliser buffers. Its parameters are one set, or a stack along a leading axis of one of two
kinds, which may both appear in one call (a protagonist with per-task adapted parameters
facing an adversary population, say):

- ``stack="task"``: row ``i`` acts in the call's task ``i`` (MAML's adapted policies);
- ``stack="member"``: a population; each episode acts with one member, drawn by the game
  (``metarobust.adversarial.game``) from the episode's reset seed.

An ``Acting`` names every player's state and the learner, whose observations, actions,
log-probs and rewards the trajectories record. Everything here is tensors, numbers and
strings, so it crosses the subprocess and Ray wire as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from metarobust.agents.policy import Params

Stack = Literal["task", "member"]

SOLE = "policy"  # the one player of an ordinary env


@dataclass(frozen=True)
class PolicyState:
    """One policy's parameters and buffers, as the sampler runs it."""

    params: Params  # one set, or each [stack, ...]
    buffers: Params = field(default_factory=dict)  # observation-normaliser statistics
    deterministic: bool = False  # act with the mean action
    stack: Stack | None = None  # what the leading axis of ``params`` indexes, if any
    # the normaliser's statistics take in every observation acted on (a learner collecting
    # its own batch; the workers' copies only: the learner merges the batch it gets back)
    track_obs: bool = False

    @classmethod
    def of(
        cls,
        params: Mapping[str, Tensor],
        module: nn.Module,
        *,
        deterministic: bool = False,
        stack: Stack | None = None,
        track_obs: bool = False,
    ) -> PolicyState:
        """Detached CPU copies of ``params`` and of ``module``'s buffers."""
        return cls(
            params={k: v.detach().cpu() for k, v in params.items()},
            buffers={k: v.detach().cpu() for k, v in module.named_buffers()},
            deterministic=deterministic,
            stack=stack,
            track_obs=track_obs,
        )

    @classmethod
    def population(cls, members: Sequence[PolicyState]) -> PolicyState:
        """Several policies of one module as one state (a single member stays itself)."""
        if len(members) == 1:
            return members[0]
        if any(m.stack is not None or m.track_obs for m in members):
            raise ValueError("population members must be single policies, not tracking")
        first = members[0]
        params = {k: torch.stack([m.params[k] for m in members]) for k in first.params}
        return cls(params, first.buffers, first.deterministic, stack="member")

    @property
    def num_stacked(self) -> int:
        """How many parameter sets a stacked state holds."""
        if self.stack is None:
            return 1
        return len(next(iter(self.params.values())))

    def with_params(self, params: Params, stack: Stack | None = None) -> PolicyState:
        """The same buffers and mode with other parameters."""
        return PolicyState(params, self.buffers, self.deterministic, stack, self.track_obs)


@dataclass(frozen=True)
class Acting:
    """Every player's state for one sampler call, and the learner among them."""

    players: Mapping[str, PolicyState]
    learner: str = SOLE

    def __post_init__(self) -> None:
        if self.learner not in self.players:
            raise ValueError(f"learner {self.learner!r} is not one of {sorted(self.players)}")
        if self.players[self.learner].stack == "member":
            raise ValueError("the learner acts with one policy, not a population")

    @classmethod
    def single(cls, state: PolicyState) -> Acting:
        """The one policy of an ordinary (one-player) env."""
        return cls({SOLE: state})
