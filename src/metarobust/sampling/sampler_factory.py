"""make_sampler: the sampler backend a config names (local, subprocess or Ray)."""

from __future__ import annotations

from metarobust.config import SamplerConfig
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.game import Game
from metarobust.sampling.ray_backend import RaySampler
from metarobust.sampling.sampler import LocalSampler, Sampler
from metarobust.sampling.subprocess_backend import SubprocessSampler
from metarobust.sampling.worker import Policies

EVALUATION_BATCH = 16  # envs a saved policy's evaluation steps together
# At most, in the one process that plays a saved run on many tasks; `metarobust evaluate
# --help` states the number too (checked by tests/test_cli_help.py).
EVALUATION_ENVS = 256


def make_sampler(
    cfg: SamplerConfig, spec: EnvSpec, policy: Policies, seed: int, *, game: Game | None = None
) -> Sampler:
    """The backend ``cfg`` names ("auto": local for one worker, subprocesses for more).

    ``policy``: one module (on any device; workers keep CPU copies), or one per player of
    ``game`` (default: one player), e.g. ``{"protagonist": ..., "adversary": ...}`` with
    ``metarobust.adversarial.game.ZeroSumGame``.
    """
    backend = cfg.backend
    if backend == "auto":
        backend = "local" if cfg.workers == 1 else "subprocess"
    kwargs = dict(envs_per_worker=cfg.envs_per_worker, num_workers=cfg.workers, game=game)
    if backend == "local":
        return LocalSampler(spec, policy, seed, **kwargs)
    if backend == "subprocess":
        return SubprocessSampler(spec, policy, seed, timeout=cfg.timeout, **kwargs)
    return RaySampler(spec, policy, seed, address=cfg.ray_address, timeout=cfg.timeout, **kwargs)
