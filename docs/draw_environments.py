"""Draw the environments page's pictures into ``docs/figures/``:

- ``env_bodies.png``: the MuJoCo bodies the task envs are built on, rendered by MuJoCo after
  a few random steps (offscreen; set ``MUJOCO_GL=egl`` where there is no display);
- ``env_held_out_layouts.png``: the eight held-out layouts of the obstacle world.

    MUJOCO_GL=egl python docs/draw_environments.py
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import metarobust  # noqa: E402, F401  (registers the ids)
from metarobust.envs.levels import DEFAULT_LEVELS, load_levels  # noqa: E402
from metarobust.plotting import draw_level  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"
BODIES = {  # the task envs on each body
    "HalfCheetah-v5": "HalfCheetahVel, HalfCheetahDir",
    "Ant-v5": "AntDir, AntVel, AntGoal",
    "Hopper-v5": "Hopper (RARL, dynamics)",
    "Walker2d-v5": "Walker2d (RARL, dynamics)",
    "Swimmer-v5": "Swimmer (RARL, dynamics)",
    "InvertedPendulum-v5": "InvertedPendulum (RARL)",
}


def body_image(env_id: str, steps: int = 20) -> np.ndarray:
    """One frame of ``env_id`` after ``steps`` random actions from a seeded reset."""
    env = gym.make(env_id, render_mode="rgb_array", width=360, height=270)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(steps):
        env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    return frame


def draw_bodies(path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.4))
    for ax, (env_id, tasks) in zip(axes.flat, BODIES.items(), strict=True):
        ax.imshow(body_image(env_id))
        ax.set_title(f"{env_id}\n{tasks}", fontsize=9)
        ax.axis("off")
    fig.tight_layout(h_pad=2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_layouts(path: Path) -> None:
    levels = load_levels(DEFAULT_LEVELS)
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.4))
    for ax, (name, level) in zip(axes.flat, levels.items(), strict=True):
        draw_level(ax, level)
        ax.set_title(name, fontsize=10)
    fig.suptitle("The obstacle world's held-out layouts (start: green dot, goal: red star)")
    fig.tight_layout(h_pad=2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    draw_bodies(OUT / "env_bodies.png")
    draw_layouts(OUT / "env_held_out_layouts.png")
    print(f"wrote {OUT / 'env_bodies.png'} and {OUT / 'env_held_out_layouts.png'}")
