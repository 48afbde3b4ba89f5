"""Policies, value functions, returns/GAE and the PPO/TRPO updates."""
