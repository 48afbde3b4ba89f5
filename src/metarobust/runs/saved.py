"""A finished (or interrupted) run read back: its config, its checkpoint and its policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarobust.agents.factories import make_policy
from metarobust.agents.policy import GaussianPolicy
from metarobust.config import Config
from metarobust.envs import base_env_id
from metarobust.errors import ConfigError
from metarobust.runs.run_dir import load_run_config
from metarobust.sampling.acting import PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims, env_players
from metarobust.utils.checkpoint import CHECKPOINT_NAME, checkpoint_errors, load_checkpoint


@dataclass(frozen=True)
class SavedRun:
    """A run directory, read once."""

    path: Path
    cfg: Config
    checkpoint: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path | str) -> SavedRun:
        """The run in ``run_dir``; ConfigError if it has no usable config or checkpoint."""
        cfg = load_run_config(Path(run_dir))
        return cls(Path(run_dir), cfg, load_checkpoint(Path(run_dir), cfg.train.algorithm))

    @property
    def algorithm(self) -> str:
        return self.cfg.train.algorithm

    @property
    def env_steps(self) -> int:
        return int(self.checkpoint["env_steps"])

    @property
    def finished(self) -> bool:
        """Whether the run has reached its config's budget."""
        iteration = int(self.checkpoint["iteration"])
        if self.cfg.train.meta_learns:
            return iteration >= self.cfg.maml.num_iterations
        if self.algorithm == "ued":
            return self.cfg.ued.budget_spent(iteration, self.env_steps)
        return self.env_steps >= self.cfg.train.total_steps

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec.from_config(self.cfg.env)

    @property
    def nominal_spec(self) -> EnvSpec:
        """The run's env without its adversary: a two-player env's base (its time limit kept,
        its adversary's settings dropped); any other env as it is."""
        if env_players(self.spec) is None:
            return self.spec
        return EnvSpec.variant(self.cfg.env, base_env_id(self.cfg.env.id))

    @property
    def state(self) -> dict[str, Any]:
        """The algorithm's own saved state."""
        return self.checkpoint["state"]

    def policy(self) -> tuple[GaussianPolicy, PolicyState]:
        """The policy the run acts with (PPO/TRPO's policy, a RARL run's protagonist, MAML's
        meta-policy): a module shaped for the run's env and its saved parameters."""
        obs_dim, act_dim = env_dims(self.spec)
        players = env_players(self.spec)
        if players is not None:
            act_dim = players[0]
        module = make_policy(self.cfg, obs_dim, act_dim)
        with checkpoint_errors(self.path):
            saved = self.checkpoint["policy"]
            state = PolicyState(dict(saved["params"]), dict(saved["buffers"]))
            module.load_state_dict(state.buffers, strict=False)
        expected = {k: tuple(v.shape) for k, v in module.named_parameters()}
        found = {k: tuple(getattr(v, "shape", ())) for k, v in state.params.items()}
        if found != expected:
            raise ConfigError(
                f"{self.path / CHECKPOINT_NAME}: its policy parameters do not fit the run's "
                "policy settings (the policy group) and env"
            )
        return module, state
