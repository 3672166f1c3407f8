"""Orbax checkpoints under MODEL_DIR/checkpoints: periodic async saves, keep-N, resume, reshard, fallbacks.

Layout of one checkpoint (orbax composite): ``<step>/params`` and ``<step>/opt_state`` (sharded arrays, restorable
onto any mesh given target shardings) and ``<step>/meta`` (JSON: step, data_position, batch_size).

Public API (also used by eval.py and infer.py):
  * ``CheckpointConfig`` (gin)
  * ``Checkpointer(model_dir, config)``: ``save``, ``restore_latest`` (falls back past corrupt checkpoints),
    ``wait``, ``close``.
  * ``restore_params(path, abstract_params, step=None)``: params only, from a model dir, its checkpoints/ folder or
    one step folder, onto the shardings carried by ``abstract_params``.
  * ``latest_step(model_dir)``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Dict, Optional, Tuple

from absl import logging
import gin
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from skip_t5x.training.state import TrainState

ITEMS = ("params", "opt_state", "meta")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """period: save every N steps (plus a final save); keep: how many to keep (None = all); async_save: write in the
  background; initial_checkpoint_path: params to start from when MODEL_DIR has no checkpoint yet (a model dir, its
  checkpoints/ folder or one step folder)."""

  period: int = 1000
  keep: Optional[int] = 3
  async_save: bool = True
  initial_checkpoint_path: Optional[str] = None

  def validate(self) -> None:
    if self.period <= 0:
      raise ValueError(f"CheckpointConfig.period={self.period} must be positive")
    if self.keep is not None and self.keep <= 0:
      raise ValueError(f"CheckpointConfig.keep={self.keep} must be positive or None")


class CorruptCheckpointError(RuntimeError):
  """No checkpoint in the directory could be restored."""


def absolute(path: str) -> str:
  """Local paths made absolute (orbax refuses relative ones); URLs such as gs://... are kept as given."""
  path = os.fspath(path)
  return path if "://" in path else os.path.abspath(path)


def checkpoint_dir(model_dir: str) -> str:
  return os.path.join(absolute(model_dir), "checkpoints")


def _partial_dirs(directory: str) -> list:
  """Step folders left behind by an interrupted save (orbax's temporary names)."""
  if not os.path.isdir(directory):
    return []
  return sorted(n for n in os.listdir(directory) if ".orbax-checkpoint-tmp" in n)


class Checkpointer:
  """Saves and restores TrainStates plus the data position with an orbax CheckpointManager."""

  def __init__(self, model_dir: str, config: CheckpointConfig = CheckpointConfig()):
    config.validate()
    self.config = config
    self.directory = checkpoint_dir(model_dir)
    self._manager = self._make_manager()

  def _make_manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.config.keep,
        save_interval_steps=1,  # the trainer decides when to save
        enable_async_checkpointing=self.config.async_save,
        create=True,
    )
    return ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def all_steps(self) -> list:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state: TrainState, data_position: int, batch_size: int, force: bool = False) -> bool:
    """Starts saving ``state`` at its step (async unless configured otherwise); returns whether a save started."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return False
    meta = {"step": step, "data_position": int(data_position), "batch_size": int(batch_size),
            "time": time.time()}
    saved = self._manager.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            meta=ocp.args.JsonSave(meta),
        ),
        force=force,
    )
    if saved:
      logging.info("Saving checkpoint at step %d to %s", step, self.directory)
    return saved

  def wait(self) -> None:
    """Blocks until pending async saves are committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def _restore_step(self, step: int, abstract_state: TrainState) -> Tuple[TrainState, Dict[str, Any]]:
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_state.params),
            opt_state=ocp.args.StandardRestore(abstract_state.opt_state),
            meta=ocp.args.JsonRestore(),
        ),
    )
    meta = dict(restored["meta"])
    step_array = jax.make_array_from_callback(  # works with non-addressable devices (multi-process)
        (), abstract_state.step.sharding, lambda _: np.asarray(meta["step"], np.int32))
    state = TrainState(step=step_array, params=restored["params"], opt_state=restored["opt_state"])
    return state, meta

  def restore_latest(self, abstract_state: TrainState) -> Optional[Tuple[TrainState, Dict[str, Any]]]:
    """Restores the newest readable checkpoint onto the shardings of ``abstract_state``.

    Returns (state, meta) or None when the directory holds no checkpoint. A checkpoint that fails to restore is
    reported, moved aside (renamed '<step>.corrupt-<time>') and the previous one is tried.
    """
    for name in _partial_dirs(self.directory):
      logging.warning("Ignoring partial (interrupted) checkpoint %s", os.path.join(self.directory, name))
    steps = self.all_steps()
    failures = []
    for step in reversed(steps):
      try:
        state, meta = self._restore_step(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except  # orbax/tensorstore raise many types
        message = f"checkpoint step {step} in {self.directory} is corrupt or incomplete ({type(e).__name__}: {e})"
        logging.error("%s; trying the previous one", message)
        print(f"WARNING: {message}; falling back to the previous checkpoint", flush=True)
        failures.append(step)
        continue
      if failures:
        self._move_aside(failures)
      logging.info("Restored checkpoint step %d from %s", step, self.directory)
      return state, meta
    if failures:
      raise CorruptCheckpointError(f"no restorable checkpoint in {self.directory} (tried steps {failures})")
    return None

  def _move_aside(self, steps) -> None:
    """Renames unreadable step folders so that new saves at those steps do not collide with them."""
    if jax.process_index() == 0:
      stamp = int(time.time())
      for step in steps:
        src = os.path.join(self.directory, str(step))
        if os.path.exists(src):
          os.rename(src, f"{src}.corrupt-{stamp}")
    self._manager.close()
    self._manager = self._make_manager()


def latest_step(model_dir: str) -> Optional[int]:
  """Latest committed step in MODEL_DIR/checkpoints, or None."""
  directory = checkpoint_dir(model_dir)
  if not os.path.isdir(directory):
    return None
  steps = ocp.utils.checkpoint_steps(epath.Path(directory))
  return max(steps) if steps else None


def _resolve_step_dir(path: str, step: Optional[int]) -> str:
  """A step folder (containing params/) from a model dir, a checkpoints/ folder or a step folder."""
  path = absolute(path)
  if os.path.isdir(os.path.join(path, "params")):
    return path
  for base in (path, checkpoint_dir(path)):
    if os.path.isdir(base):
      steps = ocp.utils.checkpoint_steps(epath.Path(base))
      if steps:
        chosen = step if step is not None else max(steps)
        if chosen not in steps:
          raise FileNotFoundError(f"no checkpoint step {chosen} in {base} (steps: {sorted(steps)})")
        return os.path.join(base, str(chosen))
  raise FileNotFoundError(f"no checkpoint found at {path!r} (expected a model dir, checkpoints/ or a step folder)")


def restore_params(path: str, abstract_params: Any, step: Optional[int] = None) -> Tuple[Any, int]:
  """Restores only the params, onto the shardings carried by ``abstract_params`` (ShapeDtypeStructs).

  ``path``: a model dir, its checkpoints/ folder or one step folder; ``step`` picks one (default: latest).
  Returns (params, step).
  """
  step_dir = _resolve_step_dir(path, step)
  params = ocp.StandardCheckpointer().restore(os.path.join(step_dir, "params"), abstract_params)
  restored_step = int(os.path.basename(os.path.normpath(step_dir)))
  logging.info("Restored params of step %d from %s", restored_step, step_dir)
  return params, restored_step
