"""Same seed, same numbers: the working tree's training loops against a reference commit.

What it proves: for each case (a tiny seeded run of PPO, TRPO, MAML-TRPO, MAML-PPO, MAML with
PLR task selection, RARL and RARL with an adversary population, robust MAML alone and with a
population, UED with Robust PLR and with PAIRED, and a stop-then-``--resume`` run of each loop
family), the
``metarobust train`` CLI of the working tree writes the same ``metrics.jsonl``, row by row and
key by key (floats compared with ==), as the reference commit's, and the same final checkpoint
(every tensor bit for bit, every RNG and sampler state, the resolved config). Only what the
wall clock sets is left out: the metrics ``charts/SPS`` and ``time/*``, and the profiler
durations MuJoCo keeps in each saved ``MjData``; and config fields the reference does not have
yet (new settings at their defaults), which the report names. A refactor that passes changed
no number.

How: the reference commit's ``src/`` and ``configs/`` are unpacked with ``git archive`` into a
temporary directory (removed afterwards, also on failure and Ctrl-C). Each case then runs
twice, in a subprocess per tree: ``python -m metarobust.cli train --config ... --set ...``
(through ``runpy``, so the same process first reports which ``metarobust`` it imported; a run
that imported the wrong tree stops the tool) with ``PYTHONPATH=<tree>/src``, the tree's own
``configs/``, one torch/OpenMP thread, a fixed ``PYTHONHASHSEED``, no TensorBoard and no
progress bar. Both runs use the same run-directory path (moved aside after each), so even
the logging paths in the saved config agree.

    python benchmarks/same_numbers.py                        # all cases against REFERENCE
    python benchmarks/same_numbers.py --reference HEAD~3 --cases ppo maml_resume
    python benchmarks/same_numbers.py --keep /tmp/same       # keep both trees' run dirs

About 4 minutes on 2 cores for all 16 cases (231 s on the 2-core VM; 8-25 s per case, most of it
imports and start-up).
Exit code: 0 when every case is identical, 1 when one differs or a run fails, 2 when the
tool cannot run (unknown revision, wrong tree imported, --keep directory not empty).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The last commit before the training loops moved onto one run layer: the numbers to keep.
REFERENCE = "8e19e2b"

ROOT = Path(__file__).resolve().parents[1]
IGNORED_KEYS = {"charts/SPS"}  # wall-clock dependent metrics
IGNORED_PREFIXES = ("time/",)
PINNED_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
MARKER = "same_numbers: imported metarobust from "
# ``python -m metarobust.cli`` in a form that first reports which tree the package came from
LAUNCH = (
    "import runpy, sys\n"
    "import metarobust\n"
    f"print({MARKER!r} + metarobust.__file__, file=sys.stderr, flush=True)\n"
    "runpy.run_module('metarobust.cli', run_name='__main__', alter_sys=True)\n"
)


@dataclass(frozen=True)
class Case:
    """A tiny seeded training run; with ``resume``, continued once more with these --set."""

    config: str  # relative to the tree's root
    overrides: tuple[str, ...]
    resume: tuple[str, ...] = ()


# 2 envs x 64 steps per iteration (the tests' tiny PPO/TRPO settings)
TINY_STEPS = (
    "sampler.envs_per_worker=2",
    "ppo.num_steps=64",
    "ppo.minibatch_size=32",
    "ppo.num_epochs=2",
    "trpo.num_steps=64",
)
PPO = Case("configs/ppo/hopper.yaml", (*TINY_STEPS, "train.total_steps=512"))  # 4 iterations
# the shipped config's 2 workers (the subprocess sampler), 2 x 64 steps per iteration
TRPO = Case("configs/ppo/hopper_trpo.yaml", ("trpo.num_steps=64", "train.total_steps=512"))
MAML = Case(  # 8 tasks x 8 episodes of 100 steps per phase, 3 meta-iterations
    "configs/maml_config.yaml",
    (
        "maml.meta_batch_size=8",
        "maml.episodes_per_task=8",
        "sampler.envs_per_worker=64",
        "maml.num_iterations=3",
    ),
)
# HopperAdv, a PPO protagonist against a TRPO adversary: both update rules in the 2-player loop
RARL = Case(
    "configs/adversarial_config.yaml",
    (*TINY_STEPS, "adversarial.adversary=trpo", "train.total_steps=512"),
)


# 2D navigation with wind: the meta-policy, then one adversary update, 8 tasks x 8 episodes
ROBUST_MAML = Case(
    "configs/robust_maml/navigation.yaml",
    (
        "maml.meta_batch_size=8",
        "maml.episodes_per_task=8",
        "sampler.envs_per_worker=64",
        "maml.num_iterations=3",
    ),
)
# the obstacle world: 8 levels of 30 steps per iteration, PPO on them
UED = Case(
    "configs/ued/obstacles.yaml",
    (
        "env.max_episode_steps=30",
        "ued.total_steps=null",
        "ued.num_iterations=4",
        "ued.levels_per_iteration=8",
        "ued.buffer_size=8",
        "ued.replay_prob=0.6",
        "sampler.envs_per_worker=8",
        "ppo.minibatch_size=64",
        "ppo.num_epochs=2",
    ),
)


def but(case: Case, *overrides: str, resume: tuple[str, ...] = ()) -> Case:
    """``case`` with more --set overrides (a later one wins) and, given, a resume."""
    return Case(case.config, (*case.overrides, *overrides), resume)


CASES = {
    "ppo": PPO,
    "trpo": TRPO,
    "maml": MAML,
    "maml_ppo": but(MAML, "maml.outer=ppo"),
    "rarl": RARL,
    "rarl_population": Case(
        "configs/adversarial_config.yaml",
        (
            *TINY_STEPS,
            "env.id=metarobust/InvertedPendulumAdv-v0",
            "adversarial.population=2",
            "adversarial.population_mode=uniform",
            "train.total_steps=512",
        ),
    ),
    # half the budget, then --resume to the whole
    "ppo_resume": but(PPO, "train.total_steps=256", resume=("train.total_steps=512",)),
    "maml_resume": but(MAML, "maml.num_iterations=2", resume=("maml.num_iterations=4",)),
    "rarl_resume": but(RARL, "train.total_steps=256", resume=("train.total_steps=512",)),
    "maml_plr": but(MAML, "maml.task_selection=plr"),
    "robust_maml": ROBUST_MAML,
    "robust_maml_population": but(
        ROBUST_MAML, "adversarial.population=2", "adversarial.population_mode=worst"
    ),
    "robust_maml_resume": but(
        ROBUST_MAML, "maml.num_iterations=2", resume=("maml.num_iterations=4",)
    ),
    "ued_plr": UED,
    "ued_paired": but(UED, "ued.generator=paired"),
    "ued_resume": but(UED, "ued.num_iterations=2", resume=("ued.num_iterations=4",)),
}


class ToolError(Exception):
    """The comparison cannot be made at all (exit 2)."""


class RunFailed(Exception):
    """A training run of one case exited non-zero."""


@dataclass
class Outcome:
    """One case's verdict; ``difference`` is empty when both trees agree."""

    case: str
    rows: str = "-"
    keys: int = 0
    checkpoint: str = "-"
    difference: str = ""
    seconds: float = 0.0
    ok: bool = False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference", default=REFERENCE, help=f"git revision to compare with ({REFERENCE})"
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the run dirs in DIR")
    parser.add_argument(
        "--metrics-only", action="store_true", help="skip the final checkpoint comparison"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the temporary trees are removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        return compare_trees(args.reference, args.cases, args.keep, not args.metrics_only)
    except ToolError as err:
        print(f"same_numbers: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("same_numbers: interrupted", file=sys.stderr)
        return 130


def compare_trees(rev: str, cases: list[str], keep: Path | None, checkpoints: bool) -> int:
    """Run ``cases`` in the reference and the working tree, print the table, return 0 / 1."""
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise ToolError(f"--keep: {keep} is not empty")
    commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit is None:
        raise ToolError(f"--reference: {rev!r} is not a commit of {ROOT}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="same_numbers-") as tmp:
        reference = unpack(commit, Path(tmp) / "reference")
        runs = (keep or Path(tmp) / "runs").resolve()  # the runs have other cwds
        print(f"reference: {git('log', '-1', '--format=%h %s', commit)[:90]}")
        print(f"current:   {ROOT} at {git('log', '-1', '--format=%h')}{dirty_note()}")
        outcomes = []
        for name in cases:
            trees = {"reference": reference, "current": ROOT}
            outcome = compare_case(name, trees, runs, checkpoints)
            outcomes.append(outcome)
            verdict = "identical" if outcome.ok else "DIFFERS"
            print(f"  {name}: {verdict} ({outcome.seconds:.1f} s)", flush=True)
        shutil.rmtree(runs / "slot", ignore_errors=True)
    print_table(outcomes)
    same = sum(o.ok for o in outcomes)
    print(f"{same}/{len(outcomes)} identical in {time.perf_counter() - started:.0f} s")
    return 0 if same == len(outcomes) else 1


def git(*args: str) -> str | None:
    """Output of a git command in the repository (None when it fails)."""
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def dirty_note() -> str:
    changes = git("status", "--porcelain", "--", "src", "configs")
    return " + uncommitted changes in src/ or configs/" if changes else ""


def unpack(commit: str, dest: Path) -> Path:
    """The commit's ``src/`` and ``configs/`` in ``dest``, via ``git archive``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "--", "src", "configs"],
        cwd=ROOT,
        capture_output=True,
    )
    if archive.returncode != 0:
        raise ToolError(f"git archive {commit}: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python before 3.10.12 / 3.11.4
            tar.extractall(dest)
    if not (dest / "src" / "metarobust" / "__init__.py").is_file():
        raise ToolError(f"{commit}: no src/metarobust package")
    return dest


def compare_case(name: str, trees: dict[str, Path], runs: Path, checkpoints: bool) -> Outcome:
    """Run case ``name`` in each tree (``reference`` first) and compare their records."""
    outcome = Outcome(name)
    tic = time.perf_counter()
    try:
        run_dirs = {
            side: run_case(CASES[name], name, side, tree, runs) for side, tree in trees.items()
        }
    except RunFailed as err:
        outcome.difference = str(err)
    else:
        ref, cur = read_rows(run_dirs["reference"]), read_rows(run_dirs["current"])
        outcome.rows = str(len(ref)) if len(ref) == len(cur) else f"{len(ref)} vs {len(cur)}"
        outcome.keys = len({k for row in (*ref, *cur) for k in compared(row)})
        outcome.difference = first_metrics_difference(ref, cur) or ""
        if checkpoints:
            found, new = checkpoint_difference(run_dirs["reference"], run_dirs["current"])
            outcome.checkpoint = "same" if found is None else "differs"
            if new:
                outcome.checkpoint += f" (new settings left out: {', '.join(new)})"
            if found and not outcome.difference:
                outcome.difference = f"checkpoint {found}"
        else:
            outcome.checkpoint = "skipped"
        outcome.ok = not outcome.difference
    outcome.seconds = time.perf_counter() - tic
    return outcome


def run_case(case: Case, name: str, side: str, tree: Path, runs: Path) -> Path:
    """Train ``case`` with ``tree``'s code and configs; return its run dir, ``runs/side/name``.

    Both sides train in the same place, ``runs/slot/name``, so that their configs match."""
    slot, dest = runs / "slot", runs / side
    run_dir = slot / name
    shutil.rmtree(run_dir, ignore_errors=True)
    common = (
        f"logging.log_dir={slot}",
        f"logging.run_name={name}",
        "logging.tensorboard=false",
        "logging.progress=false",
        "checkpoint.every=1",
    )
    args = ["--config", case.config, *set_args(*case.overrides, *common)]
    logs = [train_cli(side, tree, args)]
    if case.resume:
        logs.append(train_cli(side, tree, ["--resume", str(run_dir), *set_args(*case.resume)]))
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / name, ignore_errors=True)
    shutil.move(run_dir, dest / name)
    (dest / f"{name}.log").write_text("".join(logs))
    return dest / name


def set_args(*overrides: str) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def train_cli(side: str, tree: Path, args: list[str]) -> str:
    """``metarobust train ARGS`` in a subprocess importing ``tree/src``; its output."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), **PINNED_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH, "train", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    imported = [line for line in proc.stderr.splitlines() if line.startswith(MARKER)]
    if imported:
        path = Path(imported[0].removeprefix(MARKER)).resolve()
        if not path.is_relative_to((tree / "src").resolve()):
            raise ToolError(f"a run meant for {tree} imported {path}; check the environment")
    if proc.returncode != 0:
        print(f"--- {side} run failed, its last output:\n{proc.stderr[-3000:]}", file=sys.stderr)
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RunFailed(f"{side} run failed (exit {proc.returncode}): {tail[0]}")
    if not imported:
        raise ToolError(f"a run in {tree} did not report which metarobust it imported")
    return f"$ metarobust train {' '.join(args)}\n{proc.stdout}{proc.stderr}"


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compared(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row without its wall-clock keys."""
    return {
        k: v for k, v in row.items() if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES)
    }


def first_metrics_difference(ref: list[dict], cur: list[dict]) -> str | None:
    """Where the two metric logs first disagree, with both values; None when they agree."""
    if not ref and not cur:
        return "no metrics rows in either run"
    for i, (a, b) in enumerate(zip(ref, cur, strict=False)):  # unequal lengths: after the loop
        a, b = compared(a), compared(b)
        for key in [*a, *(k for k in b if k not in a)]:
            missing = "<missing>"
            va, vb = a.get(key, missing), b.get(key, missing)
            if va != vb:
                return f"row {i + 1} (step {ref[i].get('step')}) {key}: {va!r} vs {vb!r}"
    if len(ref) != len(cur):
        longer = "reference" if len(ref) > len(cur) else "current"
        return f"row {min(len(ref), len(cur)) + 1}: only in the {longer} run"
    return None


def checkpoint_difference(ref_dir: Path, cur_dir: Path) -> tuple[str | None, list[str]]:
    """Where the two final checkpoints first differ (None when they are the same), and the
    settings only the current tree's resolved config has (new config fields, left out of the
    comparison: what they do shows in the metrics and the state if anything)."""
    import torch

    paths = [d / "checkpoint.pt" for d in (ref_dir, cur_dir)]
    for path, side in zip(paths, ("reference", "current"), strict=True):
        if not path.is_file():
            return f"no checkpoint.pt in the {side} run", []
    ref, cur = (torch.load(p, map_location="cpu", weights_only=True) for p in paths)
    new = new_settings(ref.get("config", {}), cur.get("config", {}), "")
    for dotted in new:
        *groups, key = dotted.split(".")
        section = cur["config"]
        for group in groups:
            section = section[group]
        del section[key]
    return first_tree_difference(ref, cur, ""), new


def new_settings(ref: dict, cur: dict, path: str) -> list[str]:
    """Dotted keys of ``cur`` (a resolved config) that ``ref`` lacks."""
    found = []
    for key, value in cur.items():
        dotted = f"{path}.{key}" if path else key
        if key not in ref:
            found.append(dotted)
        elif isinstance(value, dict) and isinstance(ref[key], dict):
            found += new_settings(ref[key], value, dotted)
    return found


def first_tree_difference(a: Any, b: Any, path: str) -> str | None:
    """The first leaf where nested dicts/lists of tensors and plain values differ."""
    import torch

    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b:
                return f"{path}.{key} only in the {'reference' if key in a else 'current'} run"
            found = first_tree_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_tree_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{path}: {a.dtype} {list(a.shape)} vs {b.dtype} {list(b.shape)}"
        x, y = (t.detach().cpu().reshape(-1).numpy() for t in (a, b))
        for i in range(x.size):  # bit for bit: NaN payloads and signed zeros count
            if x[i : i + 1].tobytes() != y[i : i + 1].tobytes():
                return f"{path}[{i}] (flat): {x[i].item()!r} vs {y[i].item()!r}"
        return None
    if isinstance(a, bytes) and isinstance(b, bytes) and a != b:
        a, b = without_timings(a), without_timings(b)
    if type(a) is not type(b) or a != b:
        return f"{path}: {short(a)} vs {short(b)}"
    return None


def without_timings(blob: bytes) -> bytes:
    """A pickled ``MjData`` (a saved env state) with its profiler's wall-clock durations zeroed;
    any other bytes as they are."""
    import mujoco

    try:
        data = pickle.loads(blob)
    except Exception:  # not a pickle: compared as raw bytes
        return blob
    if not isinstance(data, mujoco.MjData):
        return blob
    for timer in data.timer:
        timer.duration = 0.0
    return pickle.dumps(data)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def print_table(outcomes: list[Outcome]) -> None:
    header = ("case", "rows", "keys", "identical", "checkpoint", "s", "first difference")
    lines = [
        (o.case, o.rows, str(o.keys), "yes" if o.ok else "NO", o.checkpoint, f"{o.seconds:.1f}",
         o.difference or "-")
        for o in outcomes
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header) - 1)]
    print()
    for row in (header, *lines):
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))


if __name__ == "__main__":
    sys.exit(main())
