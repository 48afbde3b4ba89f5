"""A sampler worker that dies, hangs or raises is reported in one line: no traceback, no hang."""

from __future__ import annotations

from metarobust.cli import main
from metarobust.errors import WorkerError


def test_cli_prints_one_line_and_the_traceback_only_when_asked(monkeypatch, capsys):
    import metarobust.train

    error = WorkerError(
        "sampler worker 1 (pid 7) failed during sample_steps: KeyError: 'x'",
        "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n",
    )

    def fails(cfg, run_dir=None):
        raise error

    monkeypatch.setattr(metarobust.train, "train", fails)
    monkeypatch.delenv("METAROBUST_DEBUG", raising=False)
    assert main(["train"]) == 1
    one_line = "metarobust: sampling failed: " + error.message
    assert capsys.readouterr().err == one_line + "\n"
    monkeypatch.setenv("METAROBUST_DEBUG", "1")
    assert main(["train"]) == 1
    assert capsys.readouterr().err == one_line + "\n" + error.worker_traceback
