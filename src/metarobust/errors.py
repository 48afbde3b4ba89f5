"""The exceptions users see: the CLI turns each into a one-line message (exit code 2 for a
ConfigError, 1 for the others)."""


class ConfigError(ValueError):
    """Bad user input: a config file, a key, a value, an env id or a run directory."""


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, diverged parameters); the last good checkpoint stays."""


class EnvError(TrainingError):
    """An env produced something no learner can use (a non-finite observation or reward)."""


class WorkerError(TrainingError):
    """A sampler worker died, did not answer in time, or raised an unexpected exception.

    ``message`` is one line naming the worker and what happened; ``worker_traceback`` is the
    worker's own traceback when it raised. ``str()`` gives both, the CLI only the message.
    """

    def __init__(self, message: str, worker_traceback: str | None = None) -> None:
        super().__init__(message)
        self.message, self.worker_traceback = message, worker_traceback

    def __str__(self) -> str:
        if self.worker_traceback is None:
            return self.message
        return f"{self.message}\n{self.worker_traceback}"

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        return type(self), (self.message, self.worker_traceback)
