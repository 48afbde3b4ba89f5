"""metarobust: meta-RL that adapts fast and robust RL that holds up under attack.

Importing the package registers the ``metarobust/*`` Gymnasium ids (``metarobust.envs``), so
``gymnasium.make("metarobust/HalfCheetahVel-v0")`` works in any script that imported it.
"""

__version__ = "0.1.0"

# After __version__, so that modules it imports can read it. Pulls in Gymnasium and MuJoCo
# (a few tenths of a second), not torch.
import metarobust.envs  # noqa: F401  (registers the ids)
