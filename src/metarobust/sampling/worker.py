"""RolloutWorker: one vector env, one batched policy forward per step, two sampling modes.

Episode mode (MAML, evaluation) runs a list of *units*, each one full episode of one task,
through the envs as a work queue. Step mode (PPO/TRPO) continues every env's stream of
experience where the previous call stopped. Both return :class:`Trajectories`.

Two-player envs (``metadata["players"] = (protagonist_dim, adversary_dim)``, the adversarial
envs) are stepped by two policies, ``{"protagonist": module, "adversary": module}``, each run
once per step on the same observations; their actions are concatenated into the env's joint
action. A call's state names the *learner*, whose actions and log-probs are recorded; the
adversary's rewards and returns are the negated env rewards (zero-sum). An opponent given
as a population (per-member params ``[member, ...]`` with ``per_task``) acts with one member
per episode, drawn from the episode's reset seed. With ``metadata["observation_attack"] =
epsilon`` the adversary acts on the protagonist's input instead: it runs first, on the true
observation, and the protagonist sees ``obs + epsilon * clip(adversary action, -1, 1)``.

Randomness does not depend on how work is split among workers or envs: a unit's env reset
seed and action noise come from ``SeedSequence([unit_seed])`` alone, a step-mode env's from
``(worker seed, global env index)`` alone. The policy runs one forward over the envs that are
stepping, so a different split changes only float rounding (BLAS picks kernels by batch
size); the same split gives bit-identical data on every backend.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from gymnasium.vector import SyncVectorEnv
from torch import Tensor, nn

from metarobust.agents.policy import (
    Params,
    batched_distribution_params,
    gaussian_log_prob_of_noise,
)
from metarobust.errors import ConfigError
from metarobust.sampling.env_factory import EnvSpec, episode_horizon, make_vector_env
from metarobust.sampling.env_state import (
    StateNotCapturable,
    capture_env_state,
    restore_env_state,
)
from metarobust.sampling.trajectories import Trajectories

# (task_index, rollout_index, task or None, unit_seed): one episode of one task.
Unit = tuple[int, int, "Mapping[str, Any] | None", int]

_EPISODE_TAG, _STEP_TAG = 0, 1  # keep unit seeds and step-mode streams apart
PLAYERS = ("protagonist", "adversary")  # the two policies of a two-player env, in action order
_SOLE = "policy"  # the one player of an ordinary env

Policies = nn.Module | Mapping[str, nn.Module]  # one policy, or one per player


def unit_seed(seed: int, task_index: int, rollout_index: int) -> int:
    """The seed of one episode unit, from the call's seed and the unit's place alone."""
    entropy = [seed, _EPISODE_TAG, task_index, rollout_index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


@contextmanager
def single_thread() -> Iterator[None]:
    """torch on one thread (as in every worker process) while the local worker samples."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


class BatchedPolicy:
    """Samples actions for a batch of envs from a policy module, one forward per call."""

    def __init__(self, policy: nn.Module) -> None:
        self.module = copy.deepcopy(policy).cpu()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._params = dict(self.module.named_parameters())
        self._buffers = dict(self.module.named_buffers())
        self.per_task = False
        self.deterministic = False
        self._task_params: Params = {}

    @property
    def num_param_sets(self) -> int:
        """How many parameter sets a per-task (or per-member) state holds."""
        return len(next(iter(self._task_params.values())))

    def load(self, state: Mapping[str, Any]) -> None:
        """Take the learner's ``{"params", "buffers", "per_task"[, "deterministic"]}``."""
        self.per_task = bool(state.get("per_task", False))
        self.deterministic = bool(state.get("deterministic", False))
        with torch.no_grad():
            for name, value in state.get("buffers", {}).items():
                self._buffers[name].copy_(torch.as_tensor(value))
            params = {k: torch.as_tensor(v) for k, v in state["params"].items()}
            unknown = params.keys() - self._params.keys()
            if unknown:
                raise KeyError(f"params not in the policy module: {sorted(unknown)}")
            if self.per_task:
                self._task_params = params  # each [task, ...]
            else:
                for name, value in params.items():
                    self._params[name].copy_(value)

    def act(
        self, obs: np.ndarray, noise: np.ndarray, tasks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped actions ``mean + std * noise`` and their log-probs for ``obs [n, obs_dim]``.

        ``tasks [n]`` picks each row's parameters when they are per task. Only the network
        runs in torch; sampling the Gaussian is a few NumPy ops on small arrays.
        """
        if self.deterministic:
            noise = np.zeros_like(noise)
        with torch.no_grad():
            if self.per_task:
                assert tasks is not None, "per-task params need each row's task"
                mean, log_std = self._per_task_distribution(torch.from_numpy(obs), tasks)
            else:
                mean, log_std = self.module(torch.from_numpy(obs))
        log_std = log_std.numpy()
        actions = mean.numpy() + np.exp(log_std) * noise
        return actions, gaussian_log_prob_of_noise(log_std, noise)

    def _per_task_distribution(self, obs: Tensor, tasks: np.ndarray) -> tuple[Tensor, Tensor]:
        # Rows regrouped as [task, slot, ...] (slots padded to the busiest task) for one vmap.
        present, group = np.unique(tasks, return_inverse=True)
        counts = np.bincount(group, minlength=len(present))
        order = np.argsort(group, kind="stable")
        slot = np.empty(len(tasks), np.int64)
        slot[order] = np.arange(len(tasks)) - np.repeat(np.cumsum(counts) - counts, counts)
        index = (torch.from_numpy(group), torch.from_numpy(slot))
        shape = (len(present), int(counts.max()))
        grouped_obs = obs.new_zeros(*shape, obs.shape[-1]).index_put_(index, obs)
        which = torch.from_numpy(present)
        params = {k: v.index_select(0, which) for k, v in self._task_params.items()}
        mean, log_std = batched_distribution_params(self.module, params, grouped_obs)
        return mean[index], log_std[index]


def player_columns(
    policies: Policies, players: tuple[int, int] | None, env_id: str
) -> dict[str, slice]:
    """Each player's columns of the env's joint action; ConfigError if policies and env differ."""
    if players is None:
        if isinstance(policies, Mapping):
            names = sorted(policies)
            raise ConfigError(f"{env_id}: a one-player env takes one policy, not {names}")
        return {_SOLE: slice(None)}
    if not isinstance(policies, Mapping) or sorted(policies) != sorted(PLAYERS):
        raise ConfigError(f"{env_id}: a two-player env needs policies for {' and '.join(PLAYERS)}")
    protagonist_dim, adversary_dim = players
    return {
        "protagonist": slice(0, protagonist_dim),
        "adversary": slice(protagonist_dim, protagonist_dim + adversary_dim),
    }


class RolloutWorker:
    """Steps ``num_envs`` envs of ``spec`` together, one forward per policy and step for all.

    ``policy`` is one module, or ``{"protagonist": ..., "adversary": ...}`` for a two-player
    env. ``env_offset`` is the global index of this worker's first env: step-mode streams are
    seeded by ``(seed, global env index)``, so any split of envs over workers gives the
    same data.
    """

    def __init__(
        self, spec: EnvSpec, num_envs: int, policy: Policies, seed: int, env_offset: int = 0
    ) -> None:
        self.spec, self.num_envs, self.seed = spec, num_envs, seed
        self.env = make_vector_env(spec, num_envs)
        self._sync = isinstance(self.env, SyncVectorEnv)
        self.obs_dim = self.env.single_observation_space.shape[0]
        self.act_dim = self.env.single_action_space.shape[0]  # joint, for two players
        self._low = self.env.single_action_space.low.astype(np.float32)
        self._high = self.env.single_action_space.high.astype(np.float32)
        try:
            self._columns = player_columns(policy, self.env.metadata.get("players"), spec.id)
        except ConfigError:
            self.env.close()
            raise
        self._epsilon = self.env.metadata.get("observation_attack")  # None: no such adversary
        modules = policy if isinstance(policy, Mapping) else {_SOLE: policy}
        self._policies = {name: BatchedPolicy(modules[name]) for name in self._columns}
        self._learner = next(iter(self._columns))
        n = num_envs
        # What the last step returned, per env (rows of envs that were not stepped are stale).
        self._next_obs = np.zeros((n, self.obs_dim), np.float32)
        self._rewards = np.zeros(n, np.float64)
        self._terminated = np.zeros(n, np.bool_)
        self._truncated = np.zeros(n, np.bool_)
        self._obs = np.zeros((n, self.obs_dim), np.float32)  # each env's current observation
        self._ended = np.zeros(n, np.bool_)  # finished and not reset since
        self._episode_seed = np.zeros(n, np.int64)  # each env's episode: its reset seed
        # Step-mode streams: one reset-seed and one noise generator per env.
        streams = [
            np.random.SeedSequence([seed, _STEP_TAG, env_offset + i]).spawn(2) for i in range(n)
        ]
        self._seed_rngs = [np.random.default_rng(s) for s, _ in streams]
        self._noise_rngs = [np.random.default_rng(s) for _, s in streams]
        self._live = False  # a step-mode stream is in progress
        self._return = np.zeros(n, np.float64)  # running return of each stream's episode
        self._length = np.zeros(n, np.int64)
        # Every sub-env gets an observation now: SyncVectorEnv's masked reset re-stacks all.
        self.env.reset(seed=[int(s.generate_state(1)[0]) for _, s in streams])

    @property
    def horizon(self) -> int:
        return episode_horizon(self.spec)

    @property
    def policy(self) -> BatchedPolicy:
        """The learner's policy: whose actions and log-probs the trajectories record."""
        return self._policies[self._learner]

    def _load(self, state: Mapping[str, Any]) -> None:
        """One policy's state, or ``{"learner": name, "players": {name: state, ...}}``."""
        if _SOLE in self._policies:
            self._policies[_SOLE].load(state)
            return
        if "players" not in state or state.get("learner") not in PLAYERS:
            raise ValueError("a two-player env's state is {'learner', 'players'}")
        for name, policy in self._policies.items():
            policy.load(state["players"][name])
        self._learner = state["learner"]

    @property
    def _reward_sign(self) -> float:
        return -1.0 if self._learner == "adversary" else 1.0  # zero-sum

    def _act(
        self, obs: np.ndarray, noise: np.ndarray, envs: np.ndarray, tasks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Joint env actions ``[n, act_dim]`` for the rows of ``envs``; the learner's
        observations (perturbed for a protagonist under observation attack), actions and
        log-probs. ``tasks`` index per-task learner params."""
        if _SOLE in self._policies:
            actions, log_probs = self._policies[_SOLE].act(obs, noise, tasks)
            return actions, obs, actions, log_probs
        joint = np.empty((len(obs), self.act_dim), np.float32)
        seen = {"protagonist": obs, "adversary": obs}
        for name in ("adversary", "protagonist"):  # the adversary first: it may move the input
            policy, columns = self._policies[name], self._columns[name]
            rows = tasks
            if name != self._learner and policy.per_task:  # a population: a member per episode
                rows = self._episode_seed[envs] % policy.num_param_sets
            actions, log_probs = policy.act(seen[name], noise[:, columns], rows)
            joint[:, columns] = actions
            if name == "adversary" and self._epsilon is not None:
                shift = self._epsilon * np.clip(actions, -1.0, 1.0)
                seen["protagonist"] = (obs + shift).astype(np.float32)
            if name == self._learner:
                learner = seen[name], actions, log_probs
        return joint, *learner

    @property
    def _learner_dim(self) -> int:
        return len(range(self.act_dim)[self._columns[self._learner]])

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ episode mode

    def sample_episodes(self, state: Mapping[str, Any], units: Sequence[Unit]) -> Trajectories:
        """Run every unit to the end of its episode; ``[1, len(units), horizon, ...]`` in unit
        order, padded with mask 0, one finished-episode record per unit."""
        with single_thread():
            self._load(state)
            return self._episodes(units)

    def _episodes(self, units: Sequence[Unit]) -> Trajectories:
        self._live = False  # the envs are reused here: a step-mode stream starts over
        n, horizon, n_units = self.num_envs, self.horizon, len(units)
        od, ad, sign = self.obs_dim, self.act_dim, self._reward_sign
        obs = np.zeros((n_units, horizon, od), np.float32)
        next_obs = np.zeros((n_units, horizon, od), np.float32)
        actions = np.zeros((n_units, horizon, self._learner_dim), np.float32)
        log_probs = np.zeros((n_units, horizon), np.float32)
        rewards = np.zeros((n_units, horizon), np.float32)
        terminated = np.zeros((n_units, horizon), np.bool_)
        truncated = np.zeros((n_units, horizon), np.bool_)
        returns = np.zeros(n_units, np.float64)
        lengths = np.zeros(n_units, np.int64)
        task_of_unit = np.array([u[0] for u in units], np.int64)

        noise = np.zeros((n, horizon, ad), np.float32)  # each env's current unit's noise
        unit_of = np.full(n, -1, np.int64)  # the unit each env runs, -1 = free
        t_of = np.zeros(n, np.int64)
        running = np.zeros(n, np.float64)
        next_unit = 0
        while True:
            free = np.flatnonzero(unit_of < 0)[: n_units - next_unit]
            if free.size:
                unit_of[free] = np.arange(next_unit, next_unit + free.size)
                self._start_units(free, [units[k] for k in unit_of[free]], noise, horizon)
                t_of[free], running[free] = 0, 0.0
                next_unit += free.size
            active = np.flatnonzero(unit_of >= 0)
            if active.size == 0:
                break
            u, t = unit_of[active], t_of[active]
            tasks = task_of_unit[u] if self.policy.per_task else None
            joint, seen, act, logp = self._act(self._obs[active], noise[active, t], active, tasks)
            obs[u, t], actions[u, t], log_probs[u, t] = seen, act, logp
            self._step(active, np.clip(joint, self._low, self._high))
            rew = self._rewards[active]
            term = self._terminated[active]
            trunc = self._truncated[active] | ((t + 1 >= horizon) & ~term)  # horizon guard
            next_obs[u, t], rewards[u, t] = self._next_obs[active], sign * rew
            terminated[u, t], truncated[u, t] = term, trunc
            running[active] += rew
            t_of[active] += 1
            self._obs[active] = self._next_obs[active]
            done = active[term | trunc]
            if done.size:
                self._ended[done] = True
                returns[unit_of[done]], lengths[unit_of[done]] = sign * running[done], t_of[done]
                unit_of[done] = -1

        mask = (np.arange(horizon) < lengths[:, None]).astype(np.float32)
        arrays = (obs, actions, rewards, log_probs, next_obs, terminated, truncated, mask)
        return Trajectories(
            *(torch.from_numpy(a[None]) for a in arrays),
            episode_returns=torch.from_numpy(returns.astype(np.float32)),
            episode_lengths=torch.from_numpy(lengths),
            episode_tasks=torch.from_numpy(task_of_unit),
        )

    def _start_units(
        self, envs: np.ndarray, units: list[Unit], noise: np.ndarray, horizon: int
    ) -> None:
        """Reset ``envs`` into their units' tasks with the units' seeds; draw their noise."""
        seeds: list[int | None] = [None] * self.num_envs
        for env, (_, _, _, seed) in zip(envs.tolist(), units, strict=True):
            reset_seq, noise_seq = np.random.SeedSequence([seed]).spawn(2)
            seeds[env] = int(reset_seq.generate_state(1)[0])
            noise[env] = np.random.default_rng(noise_seq).standard_normal(
                (horizon, self.act_dim), dtype=np.float32
            )
        # One masked reset per task: reset options carry a single task for every masked env.
        task_index = np.array([u[0] for u in units])
        for index in np.unique(task_index):
            mask = np.zeros(self.num_envs, np.bool_)
            mask[envs[task_index == index]] = True
            self._reset(mask, seeds, units[int(np.argmax(task_index == index))][2])

    # ------------------------------------------------------------------ step mode

    def sample_steps(
        self, state: Mapping[str, Any], num_steps: int, task: Mapping[str, Any] | None = None
    ) -> Trajectories:
        """``num_steps`` more steps of every env's stream: ``[1, num_envs, num_steps, ...]``.

        An env whose episode ends resets itself (next seed of its stream, ``task`` if given);
        records of episodes that ended in this call carry returns summed across calls.
        """
        with single_thread():
            self._load(state)
            if self.policy.per_task:
                raise ValueError("step mode runs one task: per-task params are for episodes")
            return self._steps(num_steps, task)

    def _steps(self, num_steps: int, task: Mapping[str, Any] | None) -> Trajectories:
        n, od, ad, sign = self.num_envs, self.obs_dim, self.act_dim, self._reward_sign
        everyone = np.ones(n, np.bool_)
        if not self._live:
            self._reset(everyone, self._stream_seeds(everyone), task)
            self._return[:], self._length[:] = 0.0, 0
            self._live = True
        noise = np.stack(
            [g.standard_normal((num_steps, ad), dtype=np.float32) for g in self._noise_rngs]
        )  # [env, time, act_dim]
        obs = np.zeros((n, num_steps, od), np.float32)
        next_obs = np.zeros((n, num_steps, od), np.float32)
        actions = np.zeros((n, num_steps, self._learner_dim), np.float32)
        log_probs = np.zeros((n, num_steps), np.float32)
        rewards = np.zeros((n, num_steps), np.float32)
        terminated = np.zeros((n, num_steps), np.bool_)
        truncated = np.zeros((n, num_steps), np.bool_)
        ep_envs: list[np.ndarray] = [np.zeros(0, np.int64)]
        ep_returns: list[np.ndarray] = [np.zeros(0, np.float64)]
        ep_lengths: list[np.ndarray] = [np.zeros(0, np.int64)]
        all_envs = np.arange(n)
        for t in range(num_steps):
            joint, seen, act, logp = self._act(self._obs, noise[:, t], all_envs)
            obs[:, t], actions[:, t], log_probs[:, t] = seen, act, logp
            self._step(all_envs, np.clip(joint, self._low, self._high))
            next_obs[:, t], rewards[:, t] = self._next_obs, sign * self._rewards
            terminated[:, t], truncated[:, t] = self._terminated, self._truncated
            self._return += self._rewards
            self._length += 1
            self._obs[:] = self._next_obs
            done = self._terminated | self._truncated
            if done.any():
                ep_envs.append(np.flatnonzero(done))
                ep_returns.append(sign * self._return[done])  # the stream keeps env rewards
                ep_lengths.append(self._length[done])
                self._return[done], self._length[done] = 0.0, 0
                self._ended |= done
                self._reset(done, self._stream_seeds(done), task)

        arrays = (obs, actions, rewards, log_probs, next_obs, terminated, truncated)
        # Records by env, then by end time: the order any split of envs over workers gives.
        order = np.argsort(np.concatenate(ep_envs), kind="stable")
        returns = np.concatenate(ep_returns)[order].astype(np.float32)
        return Trajectories(
            *(torch.from_numpy(a[None]) for a in arrays),
            mask=torch.ones(1, n, num_steps),
            episode_returns=torch.from_numpy(returns),
            episode_lengths=torch.from_numpy(np.concatenate(ep_lengths)[order]),
            episode_tasks=torch.zeros(len(returns), dtype=torch.int64),
        )

    def _stream_seeds(self, mask: np.ndarray) -> list[int | None]:
        return [
            int(rng.integers(2**32)) if m else None
            for rng, m in zip(self._seed_rngs, mask.tolist(), strict=True)
        ]

    def stream_state(self, strict: bool = True) -> dict[str, Any] | None:
        """The step-mode stream (envs mid-episode included) as checkpoint-safe values.

        For envs whose simulator state cannot be saved: ``StateNotCapturable``, or None when
        not ``strict``.
        """
        try:
            return self._stream_state()
        except StateNotCapturable:
            if strict:
                raise
            return None

    def _stream_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "live": self._live,
            "seed_rngs": [g.bit_generator.state for g in self._seed_rngs],
            "noise_rngs": [g.bit_generator.state for g in self._noise_rngs],
        }
        if self._live:
            state["obs"] = torch.from_numpy(self._obs.copy())
            state["return"] = torch.from_numpy(self._return.copy())
            state["length"] = torch.from_numpy(self._length.copy())
            state["episode_seed"] = torch.from_numpy(self._episode_seed.copy())
            if self._sync:
                state["envs"] = [capture_env_state(e) for e in self.env.envs]
            elif hasattr(self.env, "get_state"):
                state["envs"] = self.env.get_state()
            else:
                raise StateNotCapturable(f"{type(self.env).__name__} has no get_state")
        return state

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``stream_state`` (on a worker built with the same arguments)."""
        for rng, s in zip(self._seed_rngs, state["seed_rngs"], strict=True):
            rng.bit_generator.state = s
        for rng, s in zip(self._noise_rngs, state["noise_rngs"], strict=True):
            rng.bit_generator.state = s
        self._live = bool(state["live"])
        if not self._live:
            return
        self._obs[:] = np.asarray(state["obs"])
        self._return[:] = np.asarray(state["return"])
        self._length[:] = np.asarray(state["length"])
        self._episode_seed[:] = np.asarray(state["episode_seed"])
        if self._sync:
            for env, env_state in zip(self.env.envs, state["envs"], strict=True):
                restore_env_state(env, env_state)
        else:
            self.env.set_state(state["envs"])
        self._ended[:] = False

    # ------------------------------------------------------------------ env plumbing

    def _reset(
        self, mask: np.ndarray, seeds: list[int | None], task: Mapping[str, Any] | None
    ) -> None:
        """Reset the envs in ``mask`` (their rows of ``seeds``), optionally into ``task``."""
        options: dict[str, Any] = {"reset_mask": mask}  # a fresh dict: reset pops the mask
        if task is not None:
            options["task"] = task
        obs, _ = self.env.reset(seed=seeds, options=options)
        self._obs[mask] = obs[mask]
        self._ended[mask] = False
        for i in np.flatnonzero(mask):
            if seeds[i] is not None:
                self._episode_seed[i] = seeds[i]

    def _step(self, envs: np.ndarray, actions: np.ndarray) -> None:
        """Step ``envs`` with ``actions [len(envs), act_dim]``; results land in their rows."""
        if self._sync:
            # The sub-envs directly: SyncVectorEnv.step would step all envs (and with autoreset
            # DISABLED refuse finished ones); this steps only the active ones, copy-free.
            subenvs = self.env.envs
            for i, action in zip(envs.tolist(), actions, strict=True):
                obs, reward, term, trunc, _ = subenvs[i].step(action)
                self._next_obs[i], self._rewards[i] = obs, reward
                self._terminated[i], self._truncated[i] = term, trunc
            return
        # A native vector env steps everyone: idle envs get a fresh episode and zero actions.
        idle_ended = self._ended.copy()
        idle_ended[envs] = False
        if idle_ended.any():
            self._reset(idle_ended, [None] * self.num_envs, None)
        full = np.zeros((self.num_envs, self.act_dim), np.float32)
        full[envs] = actions
        obs, rewards, terminated, truncated, _ = self.env.step(full)
        self._next_obs[:], self._rewards[:] = obs, rewards
        self._terminated[:], self._truncated[:] = terminated, truncated
        self._ended |= terminated | truncated
