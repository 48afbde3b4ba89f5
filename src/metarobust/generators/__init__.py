"""Task and level generators: what proposes the tasks (levels) an agent trains on.

Every generator proposes a batch of tasks (plain task dicts, as ``reset(options={"task": ...})``
takes them) and observes a score per task once the agent has played them, so any task env
(the obstacle world's levels, goals, velocities, dynamics scales) can be driven by any of them:

- ``DomainRandomization``: the env's task distribution, uniformly (the baseline);
- ``PLR`` (Jiang et al. 2021): a buffer of levels scored by their positive value loss (for
  MAML, by the adapted policy's shortfall), replayed by rank with staleness; in its robust form
  the agent learns only from replayed levels;
- ``ACCEL`` (Parker-Holder et al. 2022): Robust PLR whose replayed high-score levels are edited
  (``edit``) into new candidates for the buffer;
- ``LevelDesigner``: a learned generator of obstacle levels paid minus the agent's return
  (minimax) or the regret against an antagonist (PAIRED, Dennis et al. 2020);
- ``CVaRSampler`` (RoML, Greenberg et al. 2023): the cross-entropy method over a box of task
  parameters, over-sampling the worst share of tasks.
"""
