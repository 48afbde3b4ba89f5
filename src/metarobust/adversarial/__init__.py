"""Robust adversarial RL (Pinto et al. 2017): two-player MuJoCo envs and their presets."""
