"""What a study is (gin: ``Study.*`` and one scoped ``<arm>/Arm.*`` per arm; see gin/studies/*.gin).

A study names its arms (a model gin file plus gin overrides), one training budget that every arm shares (steps x
batch x sequence length, so every arm trains on the same tokens), the seeds, the evaluation mixtures and the report
options. ``Study.runs()`` expands it into one `ArmRun` per arm and seed, each with its own run directory
STUDY_DIR/<arm>/seed<k>/ and the exact `python -m skip_t5x.train` / `python -m skip_t5x.eval` command lines a user
would type by hand. Everything here is plain data: nothing is parsed, imported or run.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import gin

FAMILIES = ("dense", "method", "baseline", "ablation")
# The budget every arm shares; an arm may not override it.
BUDGET_MACROS = ("TRAIN_STEPS", "BATCH_SIZE", "TASK_FEATURE_LENGTHS", "SEED")
NUM_LAYERS_BINDING = "DecoderConfig.num_layers"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MIXTURE = re.compile(r"^[A-Za-z0-9_.:-]+$")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Arm:
  """One model of the comparison.

  name: the run folder's name; default the gin scope (``@dense_matched/Arm()`` is 'dense_matched').
  model: a gin/models/*.gin file parsed after the study's run files; ``{size}`` is filled from ``Study.sizes``.
  overrides: gin macro or binding -> Python value, passed as ``--gin.NAME=VALUE`` to training.
  depth: num_layers as a multiple of the model file's depth, rounded (0.5: the matched dense depth round(L * P)).
  family: 'dense' (the baseline frontier), 'method', 'baseline' or 'ablation'.
  """

  name: Optional[str] = None
  model: str = ""
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  depth: Optional[float] = None
  family: str = "method"
  label: str = ""

  def __post_init__(self):
    if self.name is None:
      object.__setattr__(self, "name", gin.current_scope_str() or None)
    object.__setattr__(self, "overrides", dict(self.overrides))

  def validate(self) -> "Arm":
    if not isinstance(self.name, str) or not _NAME.match(self.name):
      raise ValueError(f"arm name {self.name!r} must be lowercase letters, digits and underscores (it names a "
                       "folder); give it with a scope, @dense_matched/Arm(), or Arm.name")
    if not self.model or not self.model.endswith(".gin"):
      raise ValueError(f"arm {self.name!r}: model={self.model!r} must be a gin file such as 'models/skip_small.gin'")
    if self.family not in FAMILIES:
      raise ValueError(f"arm {self.name!r}: family={self.family!r} must be one of {FAMILIES}")
    if self.depth is not None and not (isinstance(self.depth, (int, float)) and self.depth > 0):
      raise ValueError(f"arm {self.name!r}: depth={self.depth!r} must be a positive multiple of the model's depth")
    shared = sorted(set(self.overrides) & set(BUDGET_MACROS))
    if shared:
      raise ValueError(f"arm {self.name!r} overrides {shared[0]}: every arm trains on the same budget "
                       "(set it once with Study.train_steps / batch_size / sequence_length / seeds)")
    if self.depth is not None and NUM_LAYERS_BINDING in self.overrides:
      raise ValueError(f"arm {self.name!r} sets both depth={self.depth} and {NUM_LAYERS_BINDING}; keep one")
    return self


@dataclasses.dataclass(frozen=True)
class StudyArm:
  """An arm after size expansion: its folder name, its size group and its model file with the size filled in."""

  name: str
  base_name: str
  group: str  # the size ('400m') when the study has sizes, else ''
  model: str
  overrides: Dict[str, Any]
  depth: Optional[float]
  family: str
  label: str

  def with_num_layers(self, model_layers: int) -> "StudyArm":
    """The arm with its depth turned into a num_layers override, from the model file's depth `model_layers`."""
    if self.depth is None:
      return self
    layers = max(1, int(round(self.depth * model_layers)))
    return dataclasses.replace(self, overrides={**self.overrides, NUM_LAYERS_BINDING: layers})


@dataclasses.dataclass(frozen=True)
class ArmRun:
  """One arm trained with one seed, in its own run directory."""

  arm: StudyArm
  seed: int
  run_dir: str

  @property
  def key(self) -> str:
    return f"{self.arm.name}/seed{self.seed}"


def gin_value(value: Any) -> str:
  """The gin text of a Python override value (gin reads Python literals)."""
  if value is None or isinstance(value, (bool, int, float, str)):
    return repr(value)
  if isinstance(value, (list, tuple, dict)):
    return repr(value)
  raise ValueError(f"override value {value!r} ({type(value).__name__}) has no gin literal")


def gin_flags(bindings: Mapping[str, Any]) -> List[str]:
  return [f"--gin.{name}={gin_value(value)}" for name, value in bindings.items()]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Study:
  """The comparison (see the module docstring and docs/study.md for every field)."""

  name: str = ""
  arms: Sequence[Arm] = ()
  train_gin_files: Sequence[str] = ()
  eval_gin_files: Sequence[str] = ()
  train_steps: int = 0
  batch_size: int = 0
  sequence_length: int = 0
  seeds: Sequence[int] = (0,)
  only_arms: Sequence[str] = ()  # run only these arms (names or base names); empty: all
  sizes: Sequence[str] = ()  # fills '{size}' in the arms' model files; each arm runs once per size
  train_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  eval_mixtures: Sequence[str] = ("embedded_fewshot",)
  eval_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  reference_arm: str = "dense_matched"  # the matched dense arm every ratio is relative to
  method_arm: str = "skip_p50"  # the arm the headline compares with the reference and each baseline
  heldout_batches: int = 16  # validation batches of the held-out LM loss
  heldout_batch_size: int = 8
  timing_steps: int = 3  # train steps per timing round (0: no timing)
  timing_rounds: int = 3
  jobs: int = 1  # runs trained at once
  sample_tokens: int = 48  # tokens of the sample passage in the routing heatmap
  top_tokens: int = 12  # tokens listed as skipping most / least often

  def __post_init__(self):
    for name in ("arms", "train_gin_files", "eval_gin_files", "seeds", "only_arms", "sizes", "eval_mixtures"):
      value = getattr(self, name)
      object.__setattr__(self, name, (value,) if isinstance(value, (str, int)) else tuple(value))
    object.__setattr__(self, "train_overrides", dict(self.train_overrides))
    object.__setattr__(self, "eval_overrides", dict(self.eval_overrides))

  def validate(self) -> "Study":
    """Raises ValueError naming the offending field and value; returns self."""
    if not isinstance(self.name, str) or not _NAME.match(self.name):
      raise ValueError(f"Study.name={self.name!r} must be lowercase letters, digits and underscores")
    if not self.arms:
      raise ValueError(f"study {self.name!r} has no arms (Study.arms = [@dense_matched/Arm(), ...])")
    for arm in self.arms:
      if not isinstance(arm, Arm):
        raise ValueError(f"Study.arms holds {arm!r}; each entry must be an @<name>/Arm() reference")
      arm.validate()
    for field in ("train_gin_files", "eval_gin_files", "eval_mixtures", "seeds"):
      if not getattr(self, field):
        raise ValueError(f"study {self.name!r}: Study.{field} is empty")
    for field in ("train_steps", "batch_size", "sequence_length", "heldout_batches", "heldout_batch_size", "jobs",
                  "timing_rounds", "sample_tokens", "top_tokens"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Study.{field}={value!r} must be a positive integer")
    if isinstance(self.timing_steps, bool) or not isinstance(self.timing_steps, int) or self.timing_steps < 0:
      raise ValueError(f"Study.timing_steps={self.timing_steps!r} must be an integer >= 0")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds) or \
        len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"Study.seeds={self.seeds!r} must be distinct integers >= 0")
    bad = [m for m in self.eval_mixtures if not isinstance(m, str) or not _MIXTURE.match(m)]
    if bad:
      raise ValueError(f"Study.eval_mixtures entry {bad[0]!r} is not a task or mixture name")
    shared = sorted(set(self.train_overrides) & set(BUDGET_MACROS))
    if shared:
      raise ValueError(f"Study.train_overrides sets {shared[0]}; use Study.train_steps / batch_size / "
                       "sequence_length / seeds for the budget")
    self._validate_names()
    return self

  def _validate_names(self) -> None:
    names = [arm.name for arm in self.expanded_arms(selected_only=False)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(f"study {self.name!r} has two arms named {duplicates[0]!r}")
    base_names = {arm.name for arm in self.arms}
    for field in ("reference_arm", "method_arm"):
      if getattr(self, field) not in base_names:
        raise ValueError(f"Study.{field}={getattr(self, field)!r} is not one of the arms {sorted(base_names)}")
    unknown = [n for n in self.only_arms if n not in base_names and n not in names]
    if unknown:
      raise ValueError(f"STUDY_ARMS names {unknown[0]!r}, which is not an arm of study {self.name!r} "
                       f"(arms: {names})")

  def expanded_arms(self, selected_only: bool = True) -> List[StudyArm]:
    """Every arm once per size (or once), in study order; with `selected_only`, only those in ``only_arms``."""
    out = []
    for size in self.sizes or ("",):
      for arm in self.arms:
        if "{size}" in arm.model and not size:
          raise ValueError(f"arm {arm.name!r}: model={arm.model!r} uses {{size}} but Study.sizes is empty")
        name = f"{arm.name}_{size}" if size else arm.name
        if selected_only and self.only_arms and name not in self.only_arms and arm.name not in self.only_arms:
          continue
        out.append(StudyArm(name=name, base_name=arm.name, group=size, model=arm.model.format(size=size),
                            overrides=dict(arm.overrides), depth=arm.depth, family=arm.family,
                            label=arm.label or arm.name))
    return out

  def runs(self, study_dir: str, arms: Optional[Sequence[StudyArm]] = None) -> List[ArmRun]:
    """One ArmRun per selected arm and seed, arm-major, in STUDY_DIR/<arm>/seed<k>."""
    arms = self.expanded_arms() if arms is None else arms
    return [ArmRun(arm=arm, seed=seed, run_dir=os.path.join(study_dir, arm.name, f"seed{seed}"))
            for arm in arms for seed in self.seeds]

  def budget_bindings(self, seed: int) -> Dict[str, Any]:
    return {"TRAIN_STEPS": self.train_steps, "BATCH_SIZE": self.batch_size,
            "TASK_FEATURE_LENGTHS": {"targets": self.sequence_length}, "SEED": seed}

  def train_bindings(self, run: ArmRun) -> Dict[str, Any]:
    """The study's shared overrides, then the arm's, then the budget (later ones win)."""
    return {**self.train_overrides, **run.arm.overrides, **self.budget_bindings(run.seed)}

  @property
  def tokens_per_arm(self) -> int:
    return self.train_steps * self.batch_size * self.sequence_length

  def to_json(self) -> Dict[str, Any]:
    """The study as JSON-able data (written to STUDY_DIR/study.json)."""
    data = dataclasses.asdict(self)
    data["arms"] = [dataclasses.asdict(arm) for arm in self.expanded_arms(selected_only=False)]
    data["tokens_per_arm"] = self.tokens_per_arm
    return data


def eval_output_dir(run_dir: str, mixture_index: int, mixture: str) -> str:
  """The first mixture writes RUN/eval/ (what the report reads); further ones RUN/eval_<mixture>/."""
  return os.path.join(run_dir, "eval" if mixture_index == 0 else f"eval_{mixture}")


def search_path_flags(search_paths: Sequence[str]) -> List[str]:
  """The study's --gin_search_paths, made absolute, for its subcommands (which may run from elsewhere)."""
  return [f"--gin_search_paths={','.join(os.path.abspath(p) for p in search_paths)}"] if search_paths else []


def train_argv(study: Study, run: ArmRun, python: str, search_paths: Sequence[str] = ()) -> List[str]:
  """`python -m skip_t5x.train ...` for one run, exactly as a user would type it."""
  files = [*study.train_gin_files, run.arm.model]
  return [python, "-m", "skip_t5x.train", *search_path_flags(search_paths), *[f"--gin_file={f}" for f in files],
          *gin_flags(study.train_bindings(run)), f"--model_dir={run.run_dir}"]


def eval_argvs(study: Study, run: ArmRun, python: str, search_paths: Sequence[str] = ()
               ) -> List[Tuple[str, List[str]]]:
  """(mixture, `python -m skip_t5x.eval ...`) per evaluation mixture of one run."""
  out = []
  for index, mixture in enumerate(study.eval_mixtures):
    bindings = {"MIXTURE_OR_TASK_NAME": mixture, **study.eval_overrides}
    if index:
      bindings["evaluate.output_dir"] = eval_output_dir(run.run_dir, index, mixture)
    argv = [python, "-m", "skip_t5x.eval", *search_path_flags(search_paths),
            *[f"--gin_file={f}" for f in study.eval_gin_files],
            *gin_flags(bindings), f"--model_dir={run.run_dir}"]
    out.append((mixture, argv))
  return out
