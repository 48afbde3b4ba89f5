"""The adversarial side: the two-player game the sampler plays (``game.py``), the adversary
population, RARL (Pinto et al. 2017) and robust MAML, attacks and robustness evaluations. The
two-player envs themselves are in ``metarobust.envs.two_player``."""
