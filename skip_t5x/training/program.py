"""What a training run is (``TrainSpec``, gin: ``train.*``) and the compiled-to-be program built from it.

``build_program`` is the one set-up shared by the training loop and AOT compilation: every check runs before
anything compiles (model, data, optimizer, checkpoint configs; mesh vs devices; batch vs data-parallel axes), then
the optimizer, the abstract sharded train state and the jitted, donated train step. AOT compiles exactly this step
over a TPU topology's devices; the loop runs it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import gin
import jax

from skip_t5x import parallel
from skip_t5x.training import checkpoints as checkpoints_lib
from skip_t5x.training import input_pipeline, optimizers, state as state_lib, step as step_lib

NONFINITE_POLICIES = ("stop", "skip")


@gin.configurable("train")
@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """A training run as gin binds it (``train.model = %MODEL`` ...; see gin/runs/pretrain.gin).

  on_nonfinite: 'stop' ends the run at the first step whose loss, gradients or updated params are not finite
  (nothing is saved from that step on); 'skip' drops such updates and goes on.
  """

  model: Any = gin.REQUIRED
  model_dir: str = gin.REQUIRED
  train_steps: int = gin.REQUIRED
  dataset: input_pipeline.DatasetConfig = gin.REQUIRED
  mesh: Optional[parallel.MeshConfig] = None
  optimizer: Optional[optimizers.OptimizerConfig] = None
  checkpoint: Optional[checkpoints_lib.CheckpointConfig] = None
  microbatches: int = 1
  log_every_steps: int = 10
  seed: int = 0
  on_nonfinite: str = "stop"
  tensorboard: bool = True

  def __post_init__(self):
    defaults = {"mesh": parallel.MeshConfig(), "optimizer": optimizers.OptimizerConfig(),
                "checkpoint": checkpoints_lib.CheckpointConfig()}
    for name, default in defaults.items():
      if getattr(self, name) is None:
        object.__setattr__(self, name, default)

  def validate(self) -> "TrainSpec":
    """Raises ValueError naming the offending value; returns self."""
    missing = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is gin.REQUIRED]
    if missing:
      raise ValueError(f"the gin config does not bind train.{missing[0]} (missing: {missing})")
    for name in ("train_steps", "microbatches", "log_every_steps", "seed"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"train.{name}={value!r} must be an integer")
    if self.train_steps <= 0:
      raise ValueError(f"TRAIN_STEPS={self.train_steps} must be positive")
    if self.log_every_steps <= 0:
      raise ValueError(f"train.log_every_steps={self.log_every_steps} must be positive")
    if self.on_nonfinite not in NONFINITE_POLICIES:
      raise ValueError(f"train.on_nonfinite={self.on_nonfinite!r} must be one of {NONFINITE_POLICIES}")
    self.dataset.validate()
    self.optimizer.validate()
    self.checkpoint.validate()
    return self


@dataclasses.dataclass
class TrainProgram:
  """Everything built from a TrainSpec before the first step: placement, optimizer, abstract state, jitted step."""

  spec: TrainSpec
  placement: parallel.Placement
  tx: Any  # optax.GradientTransformation
  schedule: Callable[[Any], Any]
  abstract_state: state_lib.TrainState  # ShapeDtypeStructs with shardings
  shardings: state_lib.TrainState
  step_fn: Callable  # jitted (state, batch, rng) -> (state, metrics), state donated

  def init_state(self, rng: jax.Array) -> state_lib.TrainState:
    """A fresh train state, materialised shard by shard."""
    return state_lib.init_train_state(self.spec.model, self.tx, self.placement.mesh, self.placement.rules,
                                      self.placement.init_shapes, rng)[0]

  @property
  def num_params(self) -> int:
    return parallel.param_count(self.abstract_state.params)


def check_data(dataset: input_pipeline.DatasetConfig, model, read: bool = False) -> None:
  """The task exists and its vocabulary fits the model; with `read`, every task also yields an example on this
  host's shard (a glob matching nothing, an empty file, a bad first record). Runs before any compile or write."""
  input_pipeline.check_task_exists(dataset.mixture_or_task_name)
  input_pipeline.check_vocab_fits(dataset.mixture_or_task_name, model.config.vocab_size)
  if read:
    input_pipeline.check_has_data(dataset, jax.process_index(), jax.process_count())


def build_program(spec: TrainSpec, devices: Optional[Sequence[Any]] = None, data_checks: bool = True
                  ) -> TrainProgram:
  """Validates `spec` and builds its train program; `devices`: a TPU topology's devices for AOT (whose data need
  not be on the compiling machine, so only a run on this host's devices reads it in the checks)."""
  spec.validate()
  if data_checks:
    check_data(spec.dataset, spec.model, read=devices is None)
  placement = parallel.place_model(spec.model, spec.mesh, spec.dataset.sequence_length,
                                   batch_size=spec.dataset.batch_size, microbatches=spec.microbatches,
                                   devices=devices)
  tx, schedule = optimizers.make_optimizer(spec.optimizer, spec.train_steps)
  abstract_state, shardings = state_lib.abstract_train_state(spec.model, tx, placement.mesh, placement.rules,
                                                             placement.init_shapes)
  step_fn = step_lib.jit_train_step(step_lib.make_train_step(spec.model, tx, schedule, spec.microbatches),
                                    shardings, placement.mesh, placement.rules)
  return TrainProgram(spec=spec, placement=placement, tx=tx, schedule=schedule, abstract_state=abstract_state,
                      shardings=shardings, step_fn=step_fn)
