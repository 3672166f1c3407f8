"""The training loop: ``train()`` runs the TrainSpec that gin binds (``train.*``) from MODEL_DIR's latest state.

Order of work: build the program (every check before any compile or write, see program.py), lock MODEL_DIR
(run_lock.py: one trainer per dir), restore the latest checkpoint (refusing another model, see
checkpoint_compat.py; else the initial checkpoint, else a fresh sharded init) and the input position
(data_state.py), then `TrainLoop.run`: per step take a batch, run the jitted donated step, check the previous
step's metrics (one step late, so the host never waits on the device), log every ``log_every_steps``, checkpoint
(with the input position) every ``CheckpointConfig.period`` steps and at the end; SIGTERM saves and returns.
MODEL_DIR/config.gin is written once the first step checked finite (run_config.py), so a refused or failed start
leaves it as it was.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Optional

from absl import logging
import gin
import jax

from skip_t5x import parallel
from skip_t5x.training import checkpoints as checkpoints_lib
from skip_t5x.training import data_state, input_pipeline, metrics_logging, run_config, run_lock
from skip_t5x.training.preemption import PreemptionFlag
from skip_t5x.training.program import NONFINITE_POLICIES, TrainProgram, TrainSpec, build_program  # noqa: F401
from skip_t5x.training.step import host_metrics


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
  first_step_seconds: Optional[float] = None  # from set-up start to the first step checked (compile included)


def say(message: str) -> None:
  """Logs, and prints on process 0 (the user's progress lines)."""
  logging.info(message)
  if jax.process_index() == 0:
    print(message, flush=True)


def _flops_fn(model_config, seq_len: int):
  """density -> analytic training FLOPs per token (model/flops.py)."""
  from skip_t5x.model import flops as flops_lib  # pylint: disable=g-import-not-at-top

  return lambda density: flops_lib.total_flops_per_token(model_config, seq_len, density, training=True)


def restore_or_init(program: TrainProgram, checkpointer: checkpoints_lib.Checkpointer):
  """(state, data_position, resumed_from): the latest checkpoint, else a fresh sharded init (with params from
  ``initial_checkpoint_path`` when given)."""
  spec = program.spec
  restored = checkpointer.restore_latest(program.abstract_state)
  if restored is not None:
    state, meta = restored
    resumed_from = int(meta["step"])
    if int(meta.get("batch_size", spec.dataset.batch_size)) != spec.dataset.batch_size:
      raise ValueError(f"BATCH_SIZE={spec.dataset.batch_size} differs from the checkpoint's {meta['batch_size']}; "
                       "the data position cannot be resumed exactly")
    say(f"Resuming from checkpoint step {resumed_from} in {checkpointer.directory}")
    return state, int(meta.get("data_position", resumed_from)), resumed_from
  state = program.init_state(jax.random.fold_in(jax.random.key(spec.seed), 0))
  path = spec.checkpoint.initial_checkpoint_path
  if path:
    params, init_step = checkpoints_lib.restore_params(path, program.abstract_state.params)
    state = state.replace(params=params)
    say(f"Initialised params from {path} (step {init_step})")
  else:
    say(f"No checkpoint in {checkpointer.directory}: training from scratch")
  return state, 0, None


class TrainLoop:
  """The steps of one run, from the restored state to ``train_steps``: step, check, log, checkpoint."""

  def __init__(self, program: TrainProgram, checkpointer: checkpoints_lib.Checkpointer, state: Any,
               data_position: int, setup_start: float):
    spec = self.spec = program.spec
    self.program, self.checkpointer, self.state = program, checkpointer, state
    self.data_position = data_position
    self.step = int(jax.device_get(state.step))
    self.setup_start = setup_start
    placement = program.placement
    self.batches = input_pipeline.TrainBatches(spec.dataset, jax.process_index(), jax.process_count())
    self.data_states = data_state.DataStates(checkpointer.directory, jax.process_index(), jax.process_count())
    self.data_states.resume(self.step, self.batches, data_position, say=say)
    replicated = jax.sharding.NamedSharding(placement.mesh, jax.sharding.PartitionSpec())
    self.step_rng = jax.jit(lambda: jax.random.fold_in(jax.random.key(spec.seed), 1), out_shardings=replicated)()
    self.logger = metrics_logging.MetricsLogger(spec.model_dir, spec.train_steps, self.step,
                                                tensorboard=spec.tensorboard)
    self.throughput = metrics_logging.Throughput(
        tokens_per_step=spec.dataset.batch_size * spec.dataset.sequence_length,
        flops_per_token_fn=_flops_fn(spec.model.config, spec.dataset.sequence_length),
        num_devices=placement.mesh.size, peak_tflops=metrics_logging.peak_tflops_per_device())
    self.pending: Optional[tuple] = None  # (step, device metrics) dispatched but not yet checked
    self.checked_any = False
    self.on_started = None  # called once, with the step, when the first step checked finite (the run started)
    self.first_step_seconds: Optional[float] = None
    self.skipped = 0
    self.last_metrics: Dict[str, float] = {}

  def run(self, preemption: PreemptionFlag) -> bool:
    """Trains to ``train_steps`` or until SIGTERM; returns whether it was preempted. Always saves at the end."""
    preempted = False
    with self.program.placement.context():
      while self.step < self.spec.train_steps:
        if preemption.is_set():
          preempted = True
          break
        self.take_step()
        if self.step % self.spec.checkpoint.period == 0:
          self.check_pending()
          self.save_checkpoint()
      self.check_pending()
      self.save_checkpoint(force=True)
      self.checkpointer.wait()
    if preempted:
      say(f"SIGTERM: saved checkpoint step {self.step} in {self.checkpointer.directory}; exiting")
    return preempted

  def save_checkpoint(self, force: bool = False) -> None:
    """The input position (each process, synchronously), then the train state (orbax, async)."""
    self.checkpointer.check_for_errors()  # an earlier async save that failed is the error to report
    self.data_states.save(self.step, self.batches, self.data_position)
    self.checkpointer.save(self.state, self.data_position, self.spec.dataset.batch_size, force=force)
    self.data_states.prune(self.checkpointer.all_steps() + [self.step])

  def take_step(self) -> None:
    """Dispatches one step, then checks the previous one (whose metrics are ready by now)."""
    placement = self.program.placement
    batch = parallel.make_global_batch(next(self.batches), placement.mesh, placement.rules)
    self.state, metrics = self.program.step_fn(self.state, batch, self.step_rng)
    self.step += 1
    self.data_position += 1
    self.check_pending()
    self.pending = (self.step, metrics)

  def check_pending(self) -> None:
    """Non-finite guard and logging for the dispatched step not yet checked."""
    if self.pending is None:
      return
    step, metrics = self.pending
    self.pending = None
    if not self.checked_any:  # the first step includes compilation: measure throughput from its end
      self.checked_any = True
      self.throughput.reset(step)
      self.first_step_seconds = time.perf_counter() - self.setup_start
      say(f"First step (compilation included) done after {self.first_step_seconds:.1f}s")
    if float(jax.device_get(metrics["update_ok"])) < 1.0:
      self.on_nonfinite(step, float(jax.device_get(metrics["loss"])))
    elif self.on_started is not None:
      started, self.on_started = self.on_started, None
      started(step)
    if step % self.spec.log_every_steps == 0 or step == self.spec.train_steps:
      self.log(step, metrics)

  def on_nonfinite(self, step: int, loss: float) -> None:
    if self.spec.on_nonfinite == "stop":
      raise NonFiniteLossError(
          f"non-finite loss/gradients/params at step {step} (loss={loss}); stopping without saving. "
          f"The last good checkpoint is step {self.checkpointer.latest_step()} in {self.checkpointer.directory}. "
          "Lower the learning rate or set train.on_nonfinite='skip'.")
    self.skipped += 1
    logging.warning("Skipped the update of step %d: non-finite (loss=%s)", step, loss)

  def log(self, step: int, metrics: Dict[str, Any]) -> None:
    values = host_metrics(metrics)
    values.update(self.throughput.measure(step, values.get("router/density")))
    values["skipped_updates"] = float(self.skipped)
    self.last_metrics = self.logger.write(step, values)
    self.logger.progress(step, values, self.throughput.seconds_per_step)

  def close(self) -> None:
    self.logger.close()
    self.batches.close()


def train() -> TrainResult:
  """Trains the gin-bound TrainSpec (``train.*``), resuming from MODEL_DIR when it holds a checkpoint."""
  return run(TrainSpec())


def run(spec: TrainSpec) -> TrainResult:
  """Builds `spec`'s program (every check first), locks MODEL_DIR, restores or initialises, then trains."""
  program = build_program(spec)
  lock = run_lock.lock_model_dir(spec.model_dir, say=say)
  checkpointer = loop = None
  preemption = PreemptionFlag()
  try:
    setup_start = time.perf_counter()
    checkpointer = checkpoints_lib.Checkpointer(spec.model_dir, spec.checkpoint)
    state, data_position, resumed_from = restore_or_init(program, checkpointer)
    if resumed_from is not None:
      changes = run_config.describe_changes(spec.model_dir, gin.operative_config_str())
      if changes:
        say(changes)
    loop = TrainLoop(program, checkpointer, state, data_position, setup_start)
    loop.on_started = lambda step: logging.info(
        "Wrote %s", run_config.commit(spec.model_dir, resumed_from or 0, gin.operative_config_str()))
    say(f"Model: {program.num_params / 1e6:.2f}M params; mesh {dict(program.placement.mesh.shape)}; "
        f"batch {spec.dataset.batch_size} x {spec.dataset.sequence_length} tokens; "
        f"steps {loop.step} -> {spec.train_steps}")
    preemption.install()
    preempted = loop.run(preemption)
  finally:
    preemption.uninstall()
    if loop is not None:
      loop.close()
    if checkpointer is not None:
      checkpointer.close()
    if lock is not None:
      lock.release()
  return TrainResult(step=loop.step, resumed_from=resumed_from, preempted=preempted, last_metrics=loop.last_metrics,
                     skipped_updates=loop.skipped, model_dir=spec.model_dir, first_step_seconds=loop.first_step_seconds)
