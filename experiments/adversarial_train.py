"""Robust adversarial training (RARL):
``python experiments/adversarial_train.py --config configs/adversarial_config.yaml``.

A thin wrapper over ``metarobust train`` (the config sets ``train.algorithm: rarl``); every
flag of that command works here too (``--set``, ``--resume``).
"""

import sys

from metarobust.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
