"""Model-Agnostic Meta-Learning for RL (Finn, Abbeel & Levine 2017) on the shared sampler."""
