"""Two-player envs (one action ``[protagonist, adversary]``, split by ``metadata["players"]``,
zero-sum): force adversaries on MuJoCo envs and their task variants (``force``), dynamics
adversaries (``dynamics``), observation attacks (``observation``) and 2D navigation in a wind
(``wind``). The game the sampler plays on them is ``metarobust.adversarial.game``."""
