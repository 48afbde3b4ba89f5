"""metarobust: meta-RL that adapts fast and robust RL that holds up under attack."""

__version__ = "0.1.0"
