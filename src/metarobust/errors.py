"""The one exception users see: the CLI turns it into a one-line message and exit code 2."""


class ConfigError(ValueError):
    """Bad user input: a config file, a key, a value, an env id or a run directory."""


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, diverged parameters); the last good checkpoint stays."""


class EnvError(TrainingError):
    """An env produced something no learner can use (a non-finite observation or reward)."""
