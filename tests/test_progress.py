"""The training progress bar: labelled values, a UED bar that ends at its total, and the phase
of a long iteration shown while it runs."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from metarobust.api import train
from metarobust.config import load_config
from metarobust.runs import records
from metarobust.runs.saved import SavedRun


class RecordingBar(tqdm):
    """A tqdm bar that writes to a buffer and keeps every postfix it showed."""

    made: list[RecordingBar] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{**kwargs, "file": io.StringIO()})
        self.postfixes: list[str] = []
        RecordingBar.made.append(self)

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs) -> None:
        super().set_postfix(ordered_dict, refresh, **kwargs)
        self.postfixes.append(self.postfix)


@pytest.fixture
def bars(monkeypatch) -> list[RecordingBar]:
    """The bars of the training runs in the test, their progress shown."""
    RecordingBar.made = []
    monkeypatch.setattr(records, "tqdm", RecordingBar)
    return RecordingBar.made


def test_ued_bar_ends_at_its_step_budget(bars, tmp_path):
    """The run stops at the first iteration past ued.total_steps; the bar stops at 100 %."""
    overrides = [
        "train.algorithm=ued",
        "env.id=metarobust/Navigation2DObstacles-v0",
        "env.max_episode_steps=30",
        "ued.levels_per_iteration=4",
        "ued.total_steps=300",
        "sampler.envs_per_worker=4",
        "ppo.minibatch_size=32",
        "ppo.num_epochs=1",
        f"logging.log_dir={tmp_path}",
        "logging.run_name=ued",
        "logging.tensorboard=false",
    ]
    run = train(load_config(None, overrides))
    assert SavedRun.load(run).env_steps > 300  # the last iteration overshot the budget
    (bar,) = bars
    assert bar.n == bar.total == 300
    assert "100%" in str(bar)


def test_maml_bar_names_pre_and_post_adaptation_returns(bars, tiny_config):
    small = ("maml.meta_batch_size=2", "maml.episodes_per_task=2", "sampler.envs_per_worker=4",
             "maml.first_order=true", "trpo.cg_iters=2")  # fmt: skip
    train(tiny_config("maml", "maml", *small, "maml.num_iterations=2", "logging.progress=true"))
    (bar,) = bars
    assert bar.n == bar.total == 2
    last = bar.postfixes[-1]
    assert "pre=" in last and "post=" in last and "ret=" not in last
    phases = {p.split("phase=")[1] for p in bar.postfixes if "phase=" in p}
    assert {"sampling pre-adaptation", "adapting", "outer step"} <= phases


def test_rarl_bar_shows_each_phase_of_an_iteration(bars, tiny_config):
    cfg = tiny_config(
        "rarl",
        "rarl",
        "train.total_steps=256",
        "adversarial.protagonist_updates=2",
        "logging.progress=true",
    )
    train(cfg)
    (bar,) = bars
    phases = [p.split("phase=")[1] for p in bar.postfixes if "phase=" in p]
    first = phases[: phases.index("updating adversary") + 1]  # the first iteration's
    assert first == [
        "sampling protagonist 1/2",
        "updating protagonist 1/2",
        "sampling protagonist 2/2",
        "updating protagonist 2/2",
        "sampling adversary",
        "updating adversary",
    ]
    assert "return=" in bar.postfixes[-1] and "adversary=" in bar.postfixes[-1]
    assert bar.n == bar.total
