"""Meta-train with MAML: ``python experiments/maml_train.py --config configs/maml_config.yaml``.

A thin wrapper over ``metarobust train`` (the config sets ``train.algorithm: maml``); every
flag of that command works here too (``--set``, ``--resume``).
"""

import sys

from metarobust.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
