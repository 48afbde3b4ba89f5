"""metarobust: meta-RL that adapts fast and robust RL that holds up under attack.

Importing the package registers the ``metarobust/*`` Gymnasium ids (``metarobust.envs``), so
``gymnasium.make("metarobust/HalfCheetahVel-v0")`` works in any script that imported it.
The Python API (``metarobust.api``) is here too, imported on first use:

    import metarobust as mr
    run = mr.train(mr.load_config("configs/maml_config.yaml", ["maml.num_iterations=50"]))
    agent = mr.load_policy(run).adapt({"goal": [0.3, -0.2]})
    action = agent.act(obs)
"""

from typing import Any

__version__ = "0.1.0"

# After __version__, so that modules it imports can read it. Pulls in Gymnasium and MuJoCo
# (a few tenths of a second), not torch.
import metarobust.envs  # noqa: F401  (registers the ids)

_API = {"load_config": "metarobust.config", "train": "metarobust.api", "resume": "metarobust.api",
        "load_policy": "metarobust.api", "Agent": "metarobust.api"}  # fmt: skip
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """The API's names, imported when first used (torch is not needed to register envs)."""
    if name not in _API:
        raise AttributeError(f"module 'metarobust' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
