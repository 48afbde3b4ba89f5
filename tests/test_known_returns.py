"""Returns and value targets on envs whose returns are known (as Stable-Baselines3's
tests/test_gae.py): reward 1 every step, episodes of ``LENGTH`` steps that end by termination,
by the time limit, or by both at once, collected by the real sampler and turned into targets
by the real PPO and TRPO updates.

With ``gamma`` and ``n`` steps left in the episode, the discounted return is
``sum_{k<n} gamma^k = (1 - gamma^n) / (1 - gamma)``; a time-limit truncation (and the end of a
step-mode segment) adds ``gamma^n V(s_final)``, the value of the episode's final observation,
never that of the next episode's first one; a termination adds nothing, even when the time
limit falls on the same step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarobust.agents import ppo as ppo_module
from metarobust.agents import trpo as trpo_module
from metarobust.agents.baselines import ValueFunction
from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.ppo import PPO
from metarobust.agents.returns import discounted_returns
from metarobust.agents.trpo import TRPO
from metarobust.config import PPOConfig, SamplerConfig, TRPOConfig
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler_factory import make_sampler

LENGTH = 5  # steps per episode in every variant
GAMMA = 0.9


class ConstantReward(gym.Env):
    """Reward 1 at every step; the observation is the number of steps taken so far; the
    episode terminates after ``terminate_after`` steps (None: never, only a time limit ends
    it)."""

    observation_space = gym.spaces.Box(0.0, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, terminate_after: int | None = None) -> None:
        self.terminate_after, self.t = terminate_after, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        terminated = self.terminate_after is not None and self.t >= self.terminate_after
        return np.array([self.t], np.float32), 1.0, terminated, False, {}


# name: (terminates after, time limit); each ends every episode after LENGTH steps
VARIANTS = {
    "terminates": (LENGTH, LENGTH + 3),
    "time_limit": (None, LENGTH),
    "both": (LENGTH, LENGTH),  # terminated and truncated on one step: no bootstrap
}
for _name, (_after, _limit) in VARIANTS.items():
    _id = f"metarobust_test/Constant-{_name}-v0"
    if _id not in gym.registry:
        gym.register(
            _id, ConstantReward, max_episode_steps=_limit, kwargs={"terminate_after": _after}
        )


def spec_of(variant: str) -> EnvSpec:
    return EnvSpec(f"metarobust_test/Constant-{variant}-v0")


def geometric(n: int | torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """``sum_{k<n} gamma^k``."""
    return (1.0 - gamma ** torch.as_tensor(n, dtype=torch.float64)) / (1.0 - gamma)


SLOPE, BIAS = 0.5, 2.0  # V(s) = 0.5 s + 2: V(final obs 5) = 4.5, V(first obs 0) = 2


def value(obs: float) -> float:
    return SLOPE * obs + BIAS


def value_fn() -> ValueFunction:
    """``V`` as the learners' value network (one linear layer)."""
    v = ValueFunction(1, hidden_sizes=())
    with torch.no_grad():
        v.net[0].weight.fill_(SLOPE)
        v.net[0].bias.fill_(BIAS)
    return v


def policy() -> GaussianPolicy:
    torch.manual_seed(0)
    return GaussianPolicy(1, 1, hidden_sizes=(8,))


def acting(module: GaussianPolicy) -> Acting:
    return Acting.single(PolicyState.of(module.init_params(), module))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_episodes_end_with_the_right_flag_and_their_known_return(variant):
    """Episode mode (MAML, evaluation): every episode is LENGTH steps of reward 1; the
    reward-to-go is the closed form (no bootstrapping in episode mode)."""
    module = policy()
    sampler_cfg = SamplerConfig(envs_per_worker=2)
    with make_sampler(sampler_cfg, spec_of(variant), module, seed=0) as sampler:
        traj = sampler.sample_episodes(acting(module), [None, None], 3, seed=1)
    horizon = VARIANTS[variant][1]  # the time limit: the episode's padded length
    assert traj.rewards.shape == (2, 3, horizon)
    real = torch.arange(horizon) < LENGTH  # LENGTH real steps, then padding
    assert torch.equal(traj.mask, real.float().expand(2, 3, horizon))
    assert torch.equal(traj.rewards, real.float().expand(2, 3, horizon))
    last = (torch.arange(horizon) == LENGTH - 1).expand(2, 3, horizon)
    terminates, truncates = VARIANTS[variant][0] is not None, variant != "terminates"
    assert torch.equal(traj.terminated, last & terminates)
    assert torch.equal(traj.truncated, last & truncates)
    assert traj.episode_returns.tolist() == [float(LENGTH)] * 6
    assert traj.episode_lengths.tolist() == [LENGTH] * 6
    returns = discounted_returns(traj.rewards, traj.dones, traj.mask, GAMMA)
    steps_left = LENGTH - torch.arange(LENGTH)
    expected = geometric(steps_left).expand(2, 3, LENGTH)
    torch.testing.assert_close(returns[..., :LENGTH].double(), expected)


def expected_targets(variant: str, lam: float, num_steps: int) -> torch.Tensor:
    """The value targets of one env's segment of ``num_steps`` steps from a fresh reset, with
    ``V(s) = 0.5 s + 2`` and lambda 1 (bootstrapped discounted returns) or 0 (TD targets)."""
    bootstraps = variant == "time_limit"
    targets = []
    for i in range(num_steps):
        t = i % LENGTH  # the step within its episode; obs t, next obs t + 1
        episode_end = (i // LENGTH + 1) * LENGTH
        end = min(episode_end, num_steps)  # where the episode or the segment ends
        ends_by_episode = end == episode_end
        final_obs = LENGTH if ends_by_episode else end % LENGTH  # the obs after its last step
        if lam == 0.0:
            last_of_episode = t == LENGTH - 1
            bootstrap = not last_of_episode or bootstraps
            target = 1.0 + GAMMA * value(t + 1) * bootstrap
        else:
            n = end - i  # steps left before the episode or the segment ends
            bootstrap = bootstraps or not ends_by_episode
            target = float(geometric(n)) + GAMMA**n * value(final_obs) * bootstrap
        targets.append(target)
    return torch.tensor(targets, dtype=torch.float64)


def capture_gae(monkeypatch, module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record what ``module``'s own ``trajectory_gae`` call returns (advantages, value
    targets)."""
    calls = []
    original = module.trajectory_gae

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(module, "trajectory_gae", spy)
    return calls


@pytest.mark.parametrize("lam", [1.0, 0.0])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("algorithm", ["ppo", "trpo"])
def test_value_targets_of_a_collected_segment_equal_the_closed_form(
    monkeypatch, algorithm, variant, lam
):
    """Step mode (PPO, TRPO, RARL): 12 steps per env are two whole episodes and 2 steps of a
    third. The targets the update trains its value function on bootstrap with V of the final
    observation at a time-limit truncation and at the segment's end, and not at a termination
    (nor at a termination on the time limit's step); the advantages are those minus V."""
    num_steps = 2 * LENGTH + 2
    module = policy()
    generator = torch.Generator().manual_seed(0)
    if algorithm == "ppo":
        cfg = PPOConfig(gamma=GAMMA, gae_lambda=lam, num_steps=num_steps, num_epochs=1)
        update = PPO(module, value_fn(), cfg, "cpu", generator)
        calls = capture_gae(monkeypatch, ppo_module)
    else:
        cfg = TRPOConfig(gamma=GAMMA, gae_lambda=lam, num_steps=num_steps, vf_epochs=1)
        update = TRPO(module, cfg, "cpu", generator, value_fn())
        calls = capture_gae(monkeypatch, trpo_module)
    with make_sampler(SamplerConfig(envs_per_worker=2), spec_of(variant), module, 0) as sampler:
        traj = sampler.sample_steps(acting(module), num_steps)
    assert traj.episode_returns.tolist() == [float(LENGTH)] * 4  # two per env
    update.update(traj)
    assert len(calls) == 1
    advantages, targets = calls[0]  # [1, env, time]
    expected = expected_targets(variant, lam, num_steps).expand(1, 2, num_steps)
    torch.testing.assert_close(targets.double(), expected, rtol=1e-5, atol=1e-5)
    values = value(traj.obs[..., 0].double())
    torch.testing.assert_close(advantages.double(), expected - values, rtol=1e-5, atol=1e-5)


def test_the_closed_form_tells_the_variants_apart():
    """The expectations above differ exactly where bootstrapping should differ: a wrong flag
    (or the next episode's first observation in place of the final one) would fail them."""
    terminated = expected_targets("terminates", 1.0, 12)
    truncated = expected_targets("time_limit", 1.0, 12)
    assert torch.equal(terminated, expected_targets("both", 1.0, 12))
    assert torch.equal(terminated[10:], truncated[10:])  # the segment end bootstraps in both
    gap = truncated[:10] - terminated[:10]
    steps_left = torch.tensor([5, 4, 3, 2, 1] * 2, dtype=torch.float64)
    torch.testing.assert_close(gap, GAMMA**steps_left * value(LENGTH))
