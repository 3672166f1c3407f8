"""The training loop: ``train()``, the gin-configurable function behind ``python -m skip_t5x.train``.

Kept apart from the entry point (skip_t5x/train.py) so that running that file as ``__main__`` does not register a
second ``train`` configurable. Gin files bind it as ``train.<param>`` (see gin/runs/pretrain.gin).

Order of work, all validation first: model config, data config and task, optimizer and checkpoint configs, mesh
shape vs devices, batch vs data-parallel axes; then the operative config (MODEL_DIR/config.gin), sharded init or
restore (latest checkpoint, else the initial checkpoint, else from scratch), and the loop: one jitted donated
step per batch, metrics every ``log_every_steps``, a checkpoint every ``CheckpointConfig.period`` steps and at
the end, SIGTERM -> save and return.
"""
from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Dict, Optional

from absl import logging
import gin
import jax
import numpy as np

from skip_t5x import checkpoints as checkpoints_lib
from skip_t5x import gin_utils
from skip_t5x import input_pipeline
from skip_t5x import metrics_logging
from skip_t5x import optimizers
from skip_t5x import partitioning
from skip_t5x import trainer as trainer_lib

NONFINITE_POLICIES = ("stop", "skip")


class NonFiniteLossError(RuntimeError):
  """The loss, gradients or updated params became NaN/Inf and the policy is 'stop'."""


@dataclasses.dataclass
class TrainResult:
  """What a call to ``train`` did."""

  step: int  # last step reached
  resumed_from: Optional[int]  # checkpoint step restored at start, None when started fresh
  preempted: bool  # stopped early by SIGTERM (after saving)
  last_metrics: Dict[str, float]
  skipped_updates: int
  model_dir: str


class _PreemptionFlag:
  """Set by SIGTERM; checked once per step (agreed across processes)."""

  def __init__(self):
    self._event = threading.Event()
    self._previous = None

  def install(self) -> None:
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._event.set())

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def is_set(self) -> bool:
    local = self._event.is_set()
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    return bool(np.any(multihost_utils.process_allgather(np.asarray(local))))


def _flops_fn(model_config, seq_len: int):
  """density -> analytic training FLOPs per token (skip_t5x.flops), or None when unavailable."""
  from skip_t5x import flops as flops_lib  # pylint: disable=g-import-not-at-top

  def fn(density):
    result = flops_lib.flops_per_token(model_config, seq_len=seq_len, training=True, density=density)
    return float(result["total"])

  return fn


def _restore_or_init(checkpointer, checkpoint_config, abstract_state, batch_size: int, init):
  """(state, data_position, resumed_from): the latest checkpoint in MODEL_DIR, else a fresh sharded init (with
  params from ``initial_checkpoint_path`` when given)."""
  restored = checkpointer.restore_latest(abstract_state)
  if restored is not None:
    state, meta = restored
    resumed_from = int(meta["step"])
    if int(meta.get("batch_size", batch_size)) != batch_size:
      raise ValueError(f"BATCH_SIZE={batch_size} differs from the checkpoint's {meta['batch_size']}; "
                       "the data position cannot be resumed exactly")
    _say(f"Resuming from checkpoint step {resumed_from} in {checkpointer.directory}")
    return state, int(meta.get("data_position", resumed_from)), resumed_from
  state = init()
  path = checkpoint_config.initial_checkpoint_path
  if path:
    params, init_step = checkpoints_lib.restore_params(path, abstract_state.params)
    state = state.replace(params=params)
    _say(f"Initialised params from {path} (step {init_step})")
  else:
    _say(f"No checkpoint in {checkpointer.directory}: training from scratch")
  return state, 0, None


def _validate_model(model) -> None:
  config = getattr(model, "config", None)
  if config is not None and hasattr(config, "validate"):
    config.validate()


@gin.configurable
def train(model=gin.REQUIRED,
          model_dir: str = gin.REQUIRED,
          train_steps: int = gin.REQUIRED,
          dataset: input_pipeline.DatasetConfig = gin.REQUIRED,
          mesh: Optional[partitioning.MeshConfig] = None,
          optimizer: Optional[optimizers.OptimizerConfig] = None,
          checkpoint: Optional[checkpoints_lib.CheckpointConfig] = None,
          microbatches: int = 1,
          log_every_steps: int = 10,
          seed: int = 0,
          on_nonfinite: str = "stop",
          tensorboard: bool = True) -> TrainResult:
  """Trains ``model`` for ``train_steps`` steps on ``dataset``, resuming from MODEL_DIR when possible.

  Everything is validated before anything is compiled. ``on_nonfinite``: 'stop' raises NonFiniteLossError at the
  first step whose loss, gradients or updated params are not finite (nothing is saved from that step on); 'skip'
  drops such updates and goes on (counted in ``skipped_updates``).
  """
  mesh_config = mesh or partitioning.MeshConfig()
  optimizer_config = optimizer or optimizers.OptimizerConfig()
  checkpoint_config = checkpoint or checkpoints_lib.CheckpointConfig()
  if on_nonfinite not in NONFINITE_POLICIES:
    raise ValueError(f"train.on_nonfinite={on_nonfinite!r} must be one of {NONFINITE_POLICIES}")
  if train_steps <= 0:
    raise ValueError(f"TRAIN_STEPS={train_steps} must be positive")
  if log_every_steps <= 0:
    raise ValueError(f"train.log_every_steps={log_every_steps} must be positive")
  _validate_model(model)
  dataset.validate()
  input_pipeline.check_task_exists(dataset.mixture_or_task_name)
  input_pipeline.check_vocab_fits(dataset.mixture_or_task_name, model.config.vocab_size)
  optimizer_config.validate()
  checkpoint_config.validate()
  device_mesh = partitioning.create_mesh(mesh_config)
  rules = mesh_config.rules()
  partitioning.check_batch_divisible(dataset.batch_size, device_mesh, microbatches)
  tx, schedule = optimizers.make_optimizer(optimizer_config, train_steps)
  config_path = gin_utils.write_operative_config(model_dir)
  logging.info("Wrote %s", config_path)

  init_shapes = {"decoder_input_tokens": (partitioning.data_parallel_size(device_mesh), dataset.sequence_length)}
  abstract_state, shardings = trainer_lib.abstract_train_state(model, tx, device_mesh, rules, init_shapes)
  num_params = trainer_lib.param_count(abstract_state.params)
  checkpointer = checkpoints_lib.Checkpointer(model_dir, checkpoint_config)
  setup_start = time.perf_counter()
  state, data_position, resumed_from = _restore_or_init(
      checkpointer, checkpoint_config, abstract_state, dataset.batch_size,
      init=lambda: trainer_lib.init_train_state(model, tx, device_mesh, rules, init_shapes,
                                                jax.random.fold_in(jax.random.key(seed), 0))[0])
  start_step = int(jax.device_get(state.step))
  logging.info("State ready in %.1fs", time.perf_counter() - setup_start)
  _say(f"Model: {num_params / 1e6:.2f}M params; mesh {dict(device_mesh.shape)}; "
       f"batch {dataset.batch_size} x {dataset.sequence_length} tokens; steps {start_step} -> {train_steps}")

  step_fn = trainer_lib.jit_train_step(
      trainer_lib.make_train_step(model, tx, schedule, microbatches), shardings, device_mesh, rules)
  replicated = jax.sharding.NamedSharding(device_mesh, jax.sharding.PartitionSpec())
  step_rng = jax.jit(lambda: jax.random.fold_in(jax.random.key(seed), 1), out_shardings=replicated)()
  batches = input_pipeline.batch_iterator(dataset, jax.process_index(), jax.process_count(),
                                          start_batch=data_position)
  logger = metrics_logging.MetricsLogger(model_dir, train_steps, start_step, tensorboard=tensorboard)
  throughput = metrics_logging.Throughput(
      tokens_per_step=dataset.batch_size * dataset.sequence_length,
      flops_per_token_fn=_flops_fn(model.config, dataset.sequence_length),
      num_devices=device_mesh.size,
      peak_tflops=metrics_logging.peak_tflops_per_device())
  preemption = _PreemptionFlag()
  preemption.install()

  last_metrics: Dict[str, float] = {}
  skipped = 0
  preempted = False
  pending = None  # (step, device metrics) of the last dispatched step, checked one step late
  first_check = True

  def check(step_and_metrics) -> None:
    nonlocal last_metrics, skipped, first_check
    step, metrics = step_and_metrics
    update_ok = float(jax.device_get(metrics["update_ok"]))
    if first_check:  # the first step includes compilation: time from its end
      throughput.reset(step)
      first_check = False
      _say(f"First step (compilation included) done after {time.perf_counter() - setup_start:.1f}s")
    if update_ok < 1.0:
      loss = float(jax.device_get(metrics["loss"]))
      if on_nonfinite == "stop":
        raise NonFiniteLossError(
            f"non-finite loss/gradients/params at step {step} (loss={loss}); stopping without saving. "
            f"The last good checkpoint is step {checkpointer.latest_step()} in {checkpointer.directory}. "
            "Lower the learning rate or set train.on_nonfinite='skip'.")
      skipped += 1
      logging.warning("Skipped the update of step %d: non-finite (loss=%s)", step, loss)
    if step % log_every_steps == 0 or step == train_steps:
      values = trainer_lib.host_metrics(metrics)
      values.update(throughput.measure(step, values.get("router/density")))
      values["skipped_updates"] = float(skipped)
      last_metrics = logger.write(step, values)
      logger.progress(step, values, throughput.seconds_per_step)

  try:
    with trainer_lib.mesh_context(device_mesh, rules):
      step = start_step
      while step < train_steps:
        if preemption.is_set():
          preempted = True
          break
        batch = partitioning.make_global_batch(next(batches), device_mesh, rules)
        state, metrics = step_fn(state, batch, step_rng)
        step += 1
        data_position += 1
        if pending is not None:
          check(pending)
        pending = (step, metrics)
        if step % checkpoint_config.period == 0:
          check(pending)
          pending = None
          checkpointer.save(state, data_position, dataset.batch_size)
      if pending is not None:
        check(pending)
        pending = None
      checkpointer.save(state, data_position, dataset.batch_size, force=True)
      checkpointer.wait()
      if preempted:
        _say(f"SIGTERM: saved checkpoint step {step} in {checkpointer.directory}; exiting")
  finally:
    preemption.uninstall()
    logger.close()
    checkpointer.close()
  return TrainResult(step=step, resumed_from=resumed_from, preempted=preempted, last_metrics=last_metrics,
                     skipped_updates=skipped, model_dir=model_dir)


def _say(message: str) -> None:
  logging.info(message)
  if jax.process_index() == 0:
    print(message, flush=True)
