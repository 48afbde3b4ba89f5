"""Typed run configuration: YAML file -> ``--set`` overrides -> validated ``Config``.

Validation is pydantic's, stricter where its coercions hide mistakes (a boolean as a number,
an infinite rate) and with checks across groups (a minibatch larger than its batch); this
module turns its errors into one line that names the key and what was expected (raised as
``ConfigError``, which the CLI prints with exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import gymnasium as gym
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from metarobust.errors import ConfigError


def _not_a_boolean(value: Any) -> Any:
    # pydantic reads true as 1.0 for a float field; a boolean there is a mistake, not a number.
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number, not a boolean")
    return value


# Integers are strict: YAML ints only, so `--set ppo.num_steps=true` is not 1 (nor is 2.5 or
# "64" an integer). Floats take ints (`lr: 1`) and numeric strings (YAML reads 1e-3 as one),
# but never booleans, infinities or NaN.
Int = Annotated[int, Field(strict=True)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
Float = Annotated[float, BeforeValidator(_not_a_boolean), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
UnitInterval = Annotated[Float, Field(ge=0, le=1)]
Discount = Annotated[Float, Field(gt=0, le=1)]


class Section(BaseModel):
    """A config group: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvConfig(Section):
    """Which environment to train on, and how tasks are drawn for it."""

    id: str = Field("InvertedPendulum-v5", description="Gymnasium env id (any registered id)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra gymnasium.make kwargs")
    max_episode_steps: PositiveInt | None = Field(None, description="override the time limit")
    task: dict[str, Any] | None = Field(
        None, description="fixed task passed to reset(options={'task': ...}); none = env default"
    )
    task_distribution: dict[str, Any] = Field(
        default_factory=dict,
        description="settings of the env's task distribution, replacing its defaults (e.g. "
        "{trap_prob: 0.1} for the obstacle world's RandomLevels); see metarobust.envs.tasks",
    )

    @field_validator("id")
    @classmethod
    def _registered(cls, env_id: str) -> str:
        import metarobust.envs  # noqa: F401  (registers the metarobust/* ids)

        if env_id not in gym.registry:
            raise ValueError(f"unknown env id {env_id!r}; expected a registered Gymnasium id")
        return env_id

    @model_validator(mode="after")
    def _task_distribution_builds(self) -> EnvConfig:
        if self.task_distribution:
            from metarobust.envs import default_task_distribution

            default_task_distribution(self.id, self.task_distribution)  # a ConfigError if not
        return self


class SamplerConfig(Section):
    """How experience is collected."""

    backend: Literal["auto", "local", "subprocess", "ray"] = Field(
        "auto", description="auto = local for 1 worker, subprocess for more"
    )
    workers: PositiveInt = Field(1, description="worker processes (or Ray actors)")
    envs_per_worker: PositiveInt = Field(1, description="envs each worker steps together")
    ray_address: str | None = Field(None, description="Ray cluster address; none = local Ray")
    timeout: PositiveFloat = Field(
        600.0,
        description="seconds a worker may take over one request (a sampling pass), a finite "
        "number; raise it for long passes",
    )


class PolicyConfig(Section):
    """Gaussian MLP policy (and the MLP value function's shape)."""

    hidden_sizes: list[PositiveInt] = Field([64, 64], description="hidden layer widths")
    activation: Literal["tanh", "relu"] = Field("tanh", description="hidden activation")
    init_std: PositiveFloat = Field(1.0, description="initial action standard deviation")
    normalize_obs: bool = Field(False, description="running observation normalisation")


class PPOConfig(Section):
    """Proximal Policy Optimisation (clipped objective), SB3/CleanRL conventions."""

    lr: PositiveFloat = Field(3e-4, description="Adam learning rate (policy and value)")
    anneal_lr: bool = Field(False, description="linearly decay lr to 0 over training")
    num_steps: PositiveInt = Field(2048, description="steps per env per iteration")
    num_epochs: PositiveInt = Field(10, description="passes over each batch")
    minibatch_size: PositiveInt = Field(64, description="transitions per gradient step")
    gamma: Discount = Field(0.99, description="discount factor")
    gae_lambda: UnitInterval = Field(0.95, description="GAE lambda")
    clip_coef: PositiveFloat = Field(0.2, description="policy ratio clip epsilon")
    clip_value: PositiveFloat | None = Field(None, description="value clip range; none = off")
    ent_coef: NonNegativeFloat = Field(0.0, description="entropy bonus weight")
    vf_coef: NonNegativeFloat = Field(0.5, description="value loss weight")
    max_grad_norm: PositiveFloat = Field(0.5, description="global gradient-norm clip")
    target_kl: PositiveFloat | None = Field(None, description="stop epochs past this KL")
    normalize_advantages: bool = Field(True, description="standardise advantages per minibatch")


class TRPOConfig(Section):
    """Trust Region Policy Optimisation with a conjugate-gradient natural step."""

    max_kl: PositiveFloat = Field(0.01, description="KL trust-region radius delta")
    cg_iters: PositiveInt = Field(10, description="conjugate-gradient iterations")
    cg_damping: NonNegativeFloat = Field(0.1, description="Fisher damping")
    line_search_steps: PositiveInt = Field(10, description="backtracking steps")
    backtrack_ratio: Annotated[Float, Field(gt=0, lt=1)] = Field(0.8, description="step shrink")
    fisher_subsample: Annotated[Float, Field(gt=0, le=1)] = Field(
        1.0,
        description="share of the batch's transitions (evenly spaced) in the Fisher-vector "
        "products of a TRPO update (1 = exact; MAML's outer step: maml.fisher_subsample)",
    )
    num_steps: PositiveInt = Field(1024, description="steps per env per iteration")
    gamma: Discount = Field(0.99, description="discount factor")
    gae_lambda: UnitInterval = Field(0.97, description="GAE lambda")
    baseline: Literal["linear", "mlp"] = Field("mlp", description="value baseline")
    vf_lr: PositiveFloat = Field(1e-3, description="MLP value function learning rate")
    vf_epochs: PositiveInt = Field(5, description="value function epochs per iteration")
    vf_minibatch_size: PositiveInt = Field(64, description="value function minibatch")
    normalize_advantages: bool = Field(True, description="standardise advantages")


class TrainConfig(Section):
    """What to train, and for how long."""

    algorithm: Literal["ppo", "trpo", "maml", "rarl", "robust_maml", "ued"] = Field(
        "ppo",
        description="ppo / trpo: one policy; maml: meta-learning (the maml group); rarl: "
        "protagonist and adversary on a two-player env (the adversarial group); robust_maml: "
        "MAML on a two-player task env against adversaries trained on the adapted policies; "
        "ued: one policy on the levels a generator proposes (the ued group)",
    )
    total_steps: PositiveInt = Field(
        1_000_000, description="env steps to train for (ppo, trpo; rarl: protagonist steps)"
    )

    @property
    def meta_learns(self) -> bool:
        """Whether the run trains a meta-policy that adapts (MAML, robust MAML)."""
        return self.algorithm in ("maml", "robust_maml")

    @property
    def has_adversaries(self) -> bool:
        """Whether the run trains adversaries beside its policy (RARL, robust MAML)."""
        return self.algorithm in ("rarl", "robust_maml")


class MAMLConfig(Section):
    """Model-agnostic meta-learning (outer step settings: the trpo or ppo group)."""

    meta_batch_size: PositiveInt = Field(20, description="tasks per meta-iteration")
    episodes_per_task: PositiveInt = Field(20, description="episodes per task and phase")
    fast_lr: PositiveFloat = Field(0.1, description="inner step size alpha")
    num_inner_steps: NonNegativeInt = Field(
        1,
        description="inner policy-gradient steps; 0 = no adaptation, i.e. multi-task TRPO on "
        "the task distribution (the MAML paper's 'pretrained' baseline)",
    )
    first_order: bool = Field(False, description="drop second-order terms (FOMAML)")
    meta_sgd: bool = Field(False, description="learn a per-parameter alpha (Meta-SGD)")
    outer: Literal["trpo", "ppo"] = Field(
        "trpo",
        description="outer step: trpo (MAML-TRPO, the trpo group) or ppo (clipped meta-objective "
        "with Adam: ppo.lr, ppo.num_epochs, ppo.clip_coef, ppo.max_grad_norm)",
    )
    num_iterations: PositiveInt = Field(500, description="meta-iterations to train for")
    fisher_subsample: Annotated[Float, Field(gt=0, le=1)] = Field(
        1.0, description="share of episodes in the outer Fisher-vector products (1 = exact)"
    )
    task_selection: Literal["uniform", "plr", "accel", "cvar", "minimax", "paired"] = Field(
        "uniform",
        description="the meta-batch's tasks: uniform from the env's distribution; plr "
        "(replayed by post-adaptation shortfall); accel (plr plus edits of replayed levels); "
        "cvar (RoML's cross-entropy sampler of the worst ued.cvar_alpha of tasks); minimax / "
        "paired (a learned designer of levels or of task parameters in a box, paid minus the "
        "post-adaptation return / the regret against an antagonist trained on the same tasks, "
        "ued.learner); settings in the ued group",
    )
    gamma: Discount = Field(0.99, description="discount factor of the inner and outer losses")


class AdversarialConfig(Section):
    """RARL: protagonist and adversary trained in turn (updates: the ppo / trpo groups)."""

    protagonist: Literal["ppo", "trpo"] = Field("trpo", description="the protagonist's update")
    adversary: Literal["ppo", "trpo"] = Field("trpo", description="the adversary's update")
    protagonist_updates: NonNegativeInt = Field(
        1, description="N_mu: protagonist updates per iteration, adversary frozen (0: attack)"
    )
    adversary_updates: PositiveInt = Field(
        1, description="N_nu: adversary updates per iteration, protagonist frozen"
    )
    population: PositiveInt = Field(
        1, description="adversaries, each with its own updates (RAP for more than one)"
    )
    population_mode: Literal["uniform", "worst"] = Field(
        "uniform",
        description="uniform: the protagonist meets one adversary drawn per episode (RAP); "
        "worst: the one that lowered its return most in the last adversary phase",
    )
    victim: str | None = Field(
        None,
        description="attack: a saved run whose policy is the protagonist, frozen and acting with "
        "its mean action (needs protagonist_updates 0; see metarobust attack)",
    )
    acts_in: list[Literal["pre", "post"]] = Field(
        ["pre", "post"],
        description="robust_maml: the MAML phases the adversary acts in (pre- and/or "
        "post-adaptation episodes; in the others it exerts no force); protagonist_updates "
        "are meta-updates",
    )
    observes_task: bool = Field(
        False,
        description="robust_maml: the adversary sees its episode's task (the features of the "
        "env's task distribution, e.g. the goal) besides the observation",
    )
    joins_at: NonNegativeInt = Field(
        0,
        description="robust_maml: the iteration the adversaries join at; before it the "
        "meta-policy trains undisturbed (their force zero) and they do not train",
    )
    episodes_per_task: PositiveInt | None = Field(
        None,
        description="robust_maml: episodes per task of each adversary update (null: "
        "maml.episodes_per_task)",
    )

    @model_validator(mode="after")
    def _attack_needs_a_victim(self) -> AdversarialConfig:
        if (self.protagonist_updates == 0) != (self.victim is not None):
            raise ValueError(
                "protagonist_updates 0 (an attack) and a victim run go together; "
                f"got protagonist_updates={self.protagonist_updates}, victim={self.victim!r}"
            )
        return self


class UEDConfig(Section):
    """Unsupervised environment design: a PPO / TRPO agent on generated levels (tasks); the
    generators' settings also serve maml.task_selection."""

    generator: Literal["dr", "plr", "accel", "minimax", "paired", "cvar"] = Field(
        "dr",
        description="dr: the env's task distribution; plr: Robust Prioritized Level Replay; "
        "accel: Robust PLR with edits of replayed levels; minimax / paired: a learned designer "
        "(of obstacle levels, or of tasks in a box of parameters) paid minus the return / the "
        "regret against an antagonist; "
        "cvar: RoML's sampler of the worst ued.cvar_alpha of tasks by return (tasks uniform "
        "over a box of parameters: goals, velocities, dynamics scales)",
    )
    learner: Literal["ppo", "trpo"] = Field("ppo", description="the agent's update")
    num_iterations: PositiveInt = Field(500, description="iterations (level batches) to train for")
    total_steps: PositiveInt | None = Field(
        None,
        description="train until this many env steps (PAIRED's antagonist's count too) instead "
        "of for ued.num_iterations: every generator the same experience",
    )
    levels_per_iteration: PositiveInt = Field(64, description="levels proposed per iteration")
    episodes_per_level: PositiveInt = Field(1, description="episodes on each proposed level")
    buffer_size: PositiveInt = Field(256, description="plr / accel: levels kept for replay")
    replay_prob: UnitInterval = Field(0.5, description="plr / accel: chance a batch is replayed")
    temperature: PositiveFloat = Field(0.3, description="plr / accel: rank prioritisation beta")
    score: Literal["value_loss", "max_regret"] = Field(
        "value_loss",
        description="plr / accel: a level's score, its positive value loss (Robust PLR's) or "
        "max_regret (the best return seen on it minus the mean value over its steps: MaxMC)",
    )
    staleness_coef: UnitInterval = Field(0.3, description="plr / accel: staleness mixing rho")
    designer_lr: PositiveFloat = Field(0.01, description="minimax / paired: designer's Adam lr")
    cvar_alpha: Annotated[Float, Field(gt=0, le=1)] = Field(
        0.1, description="cvar generator / task selection: the worst share of tasks it over-samples"
    )
    image_every: PositiveInt = Field(
        25, description="iterations between TensorBoard pictures of proposed obstacle levels"
    )

    def budget_spent(self, iteration: int, env_steps: int) -> bool:
        """Whether a ued run is finished after ``iteration`` iterations and ``env_steps`` steps."""
        if self.total_steps is not None:
            return env_steps >= self.total_steps
        return iteration >= self.num_iterations


class LoggingConfig(Section):
    """Where and how runs are recorded."""

    log_dir: str = Field("logs", description="runs go to <log_dir>/<run_name>")
    run_name: str | None = Field(None, description="none = <env>_<algo>_<seed>_<time>")
    tensorboard: bool = Field(True, description="write TensorBoard event files")
    progress: bool = Field(True, description="show a progress bar")

    @field_validator("run_name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        # The run directory is <log_dir>/<run_name>: a separator or '..' would put it elsewhere.
        if name is not None and (name in ("", ".", "..") or any(c in name for c in "/\\\0")):
            raise ValueError(
                "expected a plain directory name inside logging.log_dir (no '/', '\\' or NUL; "
                f"not '.', '..' or empty), got {name!r}"
            )
        return name


class CheckpointConfig(Section):
    """Checkpoint cadence."""

    every: PositiveInt = Field(10, description="save every N iterations (and at the end)")


class Config(Section):
    """A full training run."""

    seed: NonNegativeInt = Field(0, description="one seed for everything")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the learner's tensors live")
    env: EnvConfig = Field(default_factory=EnvConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    trpo: TRPOConfig = Field(default_factory=TRPOConfig)
    maml: MAMLConfig = Field(default_factory=MAMLConfig)
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)
    ued: UEDConfig = Field(default_factory=UEDConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @model_validator(mode="after")
    def _meta_adversary_settings_in_robust_maml(self) -> Config:
        adv = self.adversarial
        meta_only = {
            "observes_task": (adv.observes_task, "has tasks for the adversary to observe"),
            "joins_at": (adv.joins_at, "schedules its adversaries by meta-iteration"),
            "episodes_per_task": (adv.episodes_per_task, "samples episodes per task"),
        }
        for key, (value, why) in meta_only.items():
            if value and self.train.algorithm != "robust_maml":
                raise PydanticCustomError(
                    "across_groups",
                    "adversarial.{key}: only train.algorithm robust_maml {why} (got {algorithm})",
                    {"key": key, "why": why, "algorithm": self.train.algorithm},
                )
        return self

    @model_validator(mode="after")
    def _minibatches_fit_the_batch(self) -> Config:
        # Only for the updates a run makes: MAML's outer PPO step is full-batch (meta_ppo.py)
        # and its baselines are linear, so it reads neither minibatch size.
        updates = _updates_made(self)
        num_envs = self.sampler.workers * self.sampler.envs_per_worker
        checks = (
            ("ppo", "ppo.minibatch_size", self.ppo.minibatch_size, self.ppo.num_steps),
            ("trpo", "trpo.vf_minibatch_size", self.trpo.vf_minibatch_size, self.trpo.num_steps),
        )
        for group, key, size, num_steps in checks:
            if group == "trpo" and self.trpo.baseline != "mlp":
                continue  # the linear baseline is fitted in one solve
            if group in updates and size > num_steps * num_envs:
                raise PydanticCustomError(
                    "batch_too_small",
                    "{key}: expected at most the {name} batch, {group}.num_steps x "
                    "sampler.workers x sampler.envs_per_worker = {steps} x {workers} x {envs} = "
                    "{batch} transitions (got {size})",
                    {
                        "key": key,
                        "name": group.upper(),
                        "group": group,
                        "steps": num_steps,
                        "workers": self.sampler.workers,
                        "envs": self.sampler.envs_per_worker,
                        "batch": num_steps * num_envs,
                        "size": size,
                    },
                )
        return self


def _updates_made(cfg: Config) -> set[str]:
    """The single-policy updates (``ppo``, ``trpo``) a run makes: ppo / trpo runs their own,
    RARL each trained player's (an attack's protagonist is frozen), MAML none."""
    if cfg.train.algorithm in ("ppo", "trpo"):
        return {cfg.train.algorithm}
    if cfg.train.algorithm == "rarl":
        adv = cfg.adversarial
        return {adv.adversary} | ({adv.protagonist} if adv.protagonist_updates > 0 else set())
    return set()


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Read ``path`` (YAML; none = all defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict[str, Any] = {} if path is None else read_yaml(Path(path))
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    return validate(raw)


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file, or a ConfigError naming the file and what is wrong."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not a text file (invalid UTF-8 at byte {err.start}); expected YAML"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML (nested too deeply)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config groups, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``"ppo.lr=1e-3"`` -> ``("ppo.lr", 0.001)``; the value is read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: could not read value {text!r}") from None
    return key.strip(), value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``key = "a.b.c"``, creating groups as needed."""
    *groups, leaf = key.split(".")
    node = tree
    for i, group in enumerate(groups):
        child = node.setdefault(group, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(groups[: i + 1])} is not a config group")
        node = child
    node[leaf] = value


def validate(raw: dict[str, Any]) -> Config:
    """``Config`` from a plain mapping, or a ConfigError with the first problem on one line."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_error(err, Config)) from None


def describe_error(err: ValidationError, model: type[BaseModel]) -> str:
    """One line: the dotted key, what was expected, what was given."""
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, [str(p) for p in first["loc"][:-1]])
        return f"{key}: unknown key (expected one of: {', '.join(allowed)})"
    if first["type"] == "model_type":  # a group given one value (``--set ppo=1``)
        keys = _allowed_keys(model, [str(p) for p in first["loc"]])
        return (
            f"{key}: a group of settings, not one value (got {first['input']!r}); set its keys, "
            f"e.g. {key}.{keys[0]}=..., one of: {', '.join(keys)}"
        )
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] in ("batch_too_small", "across_groups"):  # its message names the key
        return message
    if first["type"] == "value_error":
        return f"{key}: {message}"
    return f"{key}: {message[0].lower()}{message[1:]} (got {first['input']!r})"


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML (readable back by ``load_config``)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def describe_fields(model: type[BaseModel], prefix: str = "") -> str:
    """Every field as ``key  default  description``, one per line, groups flattened."""
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"\n[{key}]  {annotation.__doc__.strip().splitlines()[0]}")
            lines.append(describe_fields(annotation, f"{key}."))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(f"  {key:<28} {default!r:<22} {field.description or ''}")
    return "\n".join(lines).lstrip("\n")
