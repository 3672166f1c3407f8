"""Experiments and work units: what to run, independent of where it runs.

An `Experiment` names a gin configuration (gin files plus fixed overrides) and a sweep (a list of override
points). Each sweep point becomes one `WorkUnit` with its own id, overrides and model_dir. Executors
(`launch.local`, `launch.tpu_vm`) turn work units into processes; they never change what a work unit means.

Override values are Python values and are written as gin literals on the command line
(`0.5` -> `--gin.SKIP_RATIO=0.5`, `'layer'` -> `--gin.ROUTED="layer"`); wrap a value in `Raw` to pass gin text
unchanged (`Raw('@my_schedule()')`).
"""
from __future__ import annotations

import dataclasses
import itertools
import re
import string
from typing import Any, Iterable, Mapping, Sequence

from launch.tpus import Topology

# Fields every template may use besides the override names.
_BUILTIN_TEMPLATE_FIELDS = ("name", "wid", "overrides")
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_OVERRIDE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_.]*)?(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._=+-]")


@dataclasses.dataclass(frozen=True)
class Raw:
  """A gin value passed through as written, e.g. Raw('@schedules.rsqrt()') or Raw('%OTHER_MACRO')."""

  text: str

  def __str__(self) -> str:
    return self.text


def gin_literal(value: Any) -> str:
  """The gin text for a Python override value (what follows `--gin.NAME=`)."""
  if isinstance(value, Raw):
    return value.text
  if isinstance(value, str):
    # Double quotes: they survive shell quoting on remote command lines more readably than single ones.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
  if value is None or isinstance(value, (bool, int, float)):
    return repr(value)
  if isinstance(value, (list, tuple)):
    items = ", ".join(gin_literal(v) for v in value)
    return f"({items},)" if isinstance(value, tuple) and len(value) == 1 else (
        f"({items})" if isinstance(value, tuple) else f"[{items}]")
  if isinstance(value, dict):
    return "{" + ", ".join(f"{gin_literal(k)}: {gin_literal(v)}" for k, v in value.items()) + "}"
  raise TypeError(f"override value {value!r} of type {type(value).__name__} has no gin literal; "
                  "use bool/int/float/str/None/tuple/list/dict or launch.Raw('gin text')")


def path_component(value: Any) -> str:
  """A path-safe rendering of an override value (for model_dir and TPU names): no quotes or slashes."""
  if isinstance(value, dict):
    text = "-".join(f"{path_component(k)}-{path_component(v)}" for k, v in value.items())
  elif isinstance(value, (list, tuple)):
    text = "-".join(path_component(v) for v in value)
  else:
    text = value.text if isinstance(value, Raw) else str(value)
  return _PATH_UNSAFE_RE.sub("-", text)


def product(**axes: Iterable[Any]) -> list[dict[str, Any]]:
  """The Cartesian product of override axes, first axis slowest.

  product(SKIP_RATIO=[0.25, 0.5], ROUTED=['layer', 'ffn']) ->
  [{'SKIP_RATIO': 0.25, 'ROUTED': 'layer'}, {'SKIP_RATIO': 0.25, 'ROUTED': 'ffn'}, ...]
  """
  names = list(axes)
  values = []
  for name in names:
    axis = list(axes[name])
    if not axis:
      raise ValueError(f"sweep axis {name!r} has no values")
    values.append(axis)
  return [dict(zip(names, point)) for point in itertools.product(*values)]


def zipped(**axes: Sequence[Any]) -> list[dict[str, Any]]:
  """Sweep points taken in lockstep: zipped(A=[1, 2], B=[3, 4]) -> [{'A': 1, 'B': 3}, {'A': 2, 'B': 4}]."""
  lengths = {name: len(axis) for name, axis in axes.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zipped sweep axes must have equal lengths, got {lengths}")
  names = list(axes)
  return [dict(zip(names, point)) for point in zip(*(axes[n] for n in names))]


@dataclasses.dataclass(frozen=True)
class WorkUnit:
  """One point of an experiment's sweep: a single training run."""

  experiment_name: str
  wid: int                       # 1-based, in sweep order
  sweep_point: Mapping[str, Any]  # only the swept values (they name the work unit)
  overrides: Mapping[str, Any]    # fixed overrides updated by the sweep point
  model_dir: str
  gin_files: tuple[str, ...]
  entry_point: str
  extra_args: tuple[str, ...]
  env: Mapping[str, str]

  @property
  def label(self) -> str:
    """'SKIP_RATIO=0.25,ROUTED=layer' (or 'base' for an experiment without a sweep)."""
    return overrides_label(self.sweep_point)

  def train_args(self) -> list[str]:
    """Flags of the entry point: gin files, gin overrides, model_dir, extra args (in that order)."""
    args = [f"--gin_file={f}" for f in self.gin_files]
    args += [f"--gin.{key}={gin_literal(value)}" for key, value in self.overrides.items()]
    args.append(f"--model_dir={self.model_dir}")
    args += list(self.extra_args)
    return args

  def argv(self, python: str) -> list[str]:
    """The full command line of the work unit for a given Python interpreter."""
    return [python, "-m", self.entry_point, *self.train_args()]


def overrides_label(point: Mapping[str, Any]) -> str:
  if not point:
    return "base"
  return ",".join(f"{key}={path_component(value)}" for key, value in point.items())


def template_fields(template: str) -> list[str]:
  """Top-level field names of a str.format template ('{wid:03d}' -> 'wid')."""
  fields = []
  for _, field, _, _ in string.Formatter().parse(template):
    if field is not None:
      fields.append(re.split(r"[.\[]", field, maxsplit=1)[0])
  return fields


def render_template(template: str, what: str, values: Mapping[str, Any]) -> str:
  unknown = [f for f in template_fields(template) if f not in values]
  if unknown:
    raise ValueError(f"{what} template {template!r} uses unknown field(s) {unknown}; "
                     f"known fields: {sorted(values)}")
  return template.format(**values)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What to run.

  Attributes:
    name: lowercase letters, digits and hyphens (it also names TPU VMs), e.g. 'skip-ratio-sweep'.
    gin_files: gin files passed as --gin_file, in order.
    model_dir: template of each work unit's model_dir. Fields: {name}, {wid} (1-based int, so
      '{wid:03d}' works), {overrides} (the swept values, 'SKIP_RATIO=0.5,ROUTED=layer') and every override
      name ({SKIP_RATIO}). Work units must get distinct model_dirs.
    overrides: gin overrides shared by all work units ({'TRAIN_STEPS': 1000}), passed as --gin.NAME=VALUE.
    sweep: a list of override points (see `product`, `zipped`); each becomes a work unit. Empty means one.
    tfds_data_dir: exported as TFDS_DATA_DIR to every process (tfds reads it), if set.
    env: extra environment variables for every process (e.g. LIBTPU_INIT_ARGS).
    entry_point: the module run with `python -m`.
    extra_args: more flags for the entry point, appended after the generated ones.
    topology: the TPU slice each work unit runs on, e.g. 'v5e:16x16' (see launch.tpus.Topology); needed by
      the tpu_vm executor, ignored by the local one.
    num_slices: slices per work unit (more than one is Multislice over the data-center network).
  """

  name: str
  gin_files: tuple[str, ...]
  model_dir: str
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  sweep: Sequence[Mapping[str, Any]] = ()
  tfds_data_dir: str | None = None
  env: Mapping[str, str] = dataclasses.field(default_factory=dict)
  entry_point: str = "skip_t5x.train"
  extra_args: tuple[str, ...] = ()
  topology: str | None = None
  num_slices: int = 1

  def __post_init__(self):
    # Accept lists and mappings of any kind; store tuples and plain dicts.
    object.__setattr__(self, "gin_files", tuple(self.gin_files))
    object.__setattr__(self, "extra_args", tuple(self.extra_args))
    object.__setattr__(self, "sweep", tuple(dict(p) for p in self.sweep))
    object.__setattr__(self, "overrides", dict(self.overrides))
    object.__setattr__(self, "env", {str(k): str(v) for k, v in dict(self.env).items()})
    self.validate()

  def validate(self) -> None:
    """Raises ValueError naming the offending field and value."""
    if not isinstance(self.name, str) or not _NAME_RE.match(self.name) or len(self.name) > 40:
      raise ValueError(f"experiment name {self.name!r} must be 1-40 lowercase letters, digits or hyphens, "
                       "starting with a letter (it names TPU VMs)")
    if not self.gin_files:
      raise ValueError(f"experiment {self.name!r} has no gin_files")
    for f in self.gin_files:
      if not isinstance(f, str) or not f:
        raise ValueError(f"gin_files entry {f!r} is not a file name")
    for point in (self.overrides, *self.sweep):
      for key, value in point.items():
        if not isinstance(key, str) or not _OVERRIDE_KEY_RE.match(key):
          raise ValueError(f"override name {key!r} is not a gin macro or binding "
                           "(e.g. 'SKIP_RATIO' or 'RoutingConfig.skip_ratio')")
        gin_literal(value)  # raises TypeError naming the value
    for key in self.env:
      if not _ENV_KEY_RE.match(key):
        raise ValueError(f"environment variable name {key!r} is invalid")
    if self.topology is not None:
      Topology.parse(self.topology)  # raises naming the topology
    if not isinstance(self.num_slices, int) or self.num_slices < 1:
      raise ValueError(f"num_slices {self.num_slices!r} must be a positive int")
    if not isinstance(self.model_dir, str) or not self.model_dir:
      raise ValueError(f"model_dir template {self.model_dir!r} is empty")
    if len(self.sweep) > 1 and not set(template_fields(self.model_dir)) & {"wid", "overrides", *self._swept_keys()}:
      raise ValueError(f"model_dir template {self.model_dir!r} is the same for all {len(self.sweep)} work "
                       "units; add {wid} or {overrides}")
    units = self.work_units()  # renders every template: unknown fields fail here
    dirs = [u.model_dir for u in units]
    duplicates = sorted({d for d in dirs if dirs.count(d) > 1})
    if duplicates:
      raise ValueError(f"work units share model_dir {duplicates[0]!r}; make the model_dir template "
                       "distinguish them (use {wid} or {overrides})")

  def _swept_keys(self) -> list[str]:
    keys: list[str] = []
    for point in self.sweep:
      keys += [k for k in point if k not in keys]
    return keys

  def template_values(self, wid: int, sweep_point: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    values: dict[str, Any] = {key: path_component(value) for key, value in overrides.items()}
    values.update(name=self.name, wid=wid, overrides=overrides_label(sweep_point))
    return values

  def work_units(self) -> list[WorkUnit]:
    units = []
    env = dict(self.env)
    if self.tfds_data_dir:
      env.setdefault("TFDS_DATA_DIR", self.tfds_data_dir)
    for wid, point in enumerate(self.sweep or ({},), start=1):
      overrides = {**self.overrides, **point}
      values = self.template_values(wid, point, overrides)
      units.append(WorkUnit(
          experiment_name=self.name,
          wid=wid,
          sweep_point=dict(point),
          overrides=overrides,
          model_dir=render_template(self.model_dir, "model_dir", values),
          gin_files=self.gin_files,
          entry_point=self.entry_point,
          extra_args=self.extra_args,
          env=env,
      ))
    return units

  def replace(self, **changes) -> "Experiment":
    return dataclasses.replace(self, **changes)
