"""One rule for every report's outputs: ``--out DIR``, a rerun replaces, one writer at a time."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from metarobust.api import train
from metarobust.cli import main
from metarobust.runs.outputs import OUTPUT_LOCK_NAME, output_dir, write_csv


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def ppo_run(tiny_config) -> Path:
    return train(tiny_config("ppo", "ppo"))


def test_a_rerun_replaces_and_out_writes_elsewhere(ppo_run, tmp_path):
    assert main(["evaluate", str(ppo_run), "--episodes", "3"]) == 0
    first = (ppo_run / "evaluation.csv").read_text()
    assert len(read_rows(ppo_run / "evaluation.csv")) == 3
    assert main(["evaluate", str(ppo_run), "--episodes", "3"]) == 0
    assert (ppo_run / "evaluation.csv").read_text() == first  # same seed: the same file again
    out = tmp_path / "reports" / "ppo"
    assert main(["evaluate", str(ppo_run), "--episodes", "4", "--out", str(out)]) == 0
    assert len(read_rows(out / "evaluation.csv")) == 4
    assert (ppo_run / "evaluation.csv").read_text() == first  # the run's own file untouched
    leftovers = [p.name for d in (ppo_run, out) for p in d.iterdir() if ".partial" in p.name]
    assert leftovers == []


def test_two_commands_never_write_into_one_folder_at_once(ppo_run, tmp_path, capsys):
    out = tmp_path / "shared_out"
    with output_dir(out):  # another command is writing here
        assert main(["evaluate", str(ppo_run), "--episodes", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"metarobust: error: {out}: another metarobust command is writing its outputs here; "
            "wait for it to finish or write elsewhere with --out DIR"
        )
        assert not (out / "evaluation.csv").exists()
        # a folder of its own, or the run directory, is free (training's lock is another one)
        assert main(["evaluate", str(ppo_run), "--episodes", "2"]) == 0
    assert main(["evaluate", str(ppo_run), "--episodes", "2", "--out", str(out)]) == 0
    assert len(read_rows(out / "evaluation.csv")) == 2


def test_a_failed_command_leaves_no_folder_behind(ppo_run, tmp_path, capsys):
    out = tmp_path / "never"
    args = ["evaluate", str(ppo_run), "--out", str(out), "--later-lr", "0.1"]
    assert main(args) == 2  # --later-lr is for MAML runs only
    assert "--later-lr: only for MAML runs" in capsys.readouterr().err
    assert not out.exists()
    assert main(["evaluate", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert not out.exists() and not (tmp_path / "nope").exists()


def test_out_must_be_a_folder(ppo_run, tmp_path, capsys):
    a_file = tmp_path / "report.csv"
    a_file.write_text("mine\n")
    assert main(["evaluate", str(ppo_run), "--out", str(a_file)]) == 2
    assert capsys.readouterr().err.strip().endswith("is a file, not a folder for the outputs")
    assert a_file.read_text() == "mine\n"


def test_an_interrupted_write_keeps_the_previous_file(tmp_path):
    path = write_csv(tmp_path / "table.csv", ["a", "b"], [[1, 2]])

    def rows():
        yield [3, 4]
        raise KeyboardInterrupt  # Ctrl-C half way through the new file

    with pytest.raises(KeyboardInterrupt):
        write_csv(path, ["a", "b"], rows())
    assert path.read_text().splitlines() == ["a,b", "1,2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    assert not (tmp_path / OUTPUT_LOCK_NAME).exists()


def test_summaries_count_in_words(ppo_run, capsys):
    from metarobust.utils.wording import count

    assert [count(1, "episode"), count(2, "episode"), count(3, "mass")] == [
        "1 episode", "2 episodes", "3 masses"
    ]  # fmt: skip
    assert main(["evaluate", str(ppo_run), "--episodes", "1"]) == 0
    assert " over 1 episode (mean action" in capsys.readouterr().out
    args = ["evaluate", str(ppo_run), "--under-attack", "--tasks", "2", "--episodes", "2"]
    assert main(args) == 0
    assert (
        "metarobust/InvertedPendulumAdv-v0, the run's one task (InvertedPendulum-v5 has no task "
        "distribution to draw --tasks from) x 2 episodes, return after 0 steps: none"
    ) in capsys.readouterr().out
