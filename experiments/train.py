"""Train PPO/TRPO from a YAML config: ``python experiments/train.py --config FILE [--set k=v]``.

A thin wrapper around ``metarobust train``; everything lives in the library.
"""

import sys

from metarobust.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
