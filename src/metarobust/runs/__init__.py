"""The run layer: a Config becomes a ready run (training.py), a saved run is read back
(saved.py); algorithms give it only their state and iteration body (algorithm.py)."""
