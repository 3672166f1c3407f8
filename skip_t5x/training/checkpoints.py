"""Orbax checkpoints under MODEL_DIR/checkpoints: periodic async saves, keep-N, resume, reshard, fallbacks.

Layout of one checkpoint (orbax composite): ``<step>/params`` and ``<step>/opt_state`` (sharded arrays, restorable
onto any mesh given target shardings) and ``<step>/meta`` (JSON: step, data_position, batch_size).

Public API (also used by eval.py and infer.py):
  * ``CheckpointConfig`` (gin)
  * ``Checkpointer(model_dir, config)``: ``save``, ``restore_latest`` (refuses another model or optimizer, named
    as such by checkpoint_compat before restoring; falls back past corrupt checkpoints), ``wait``, ``close``.
  * ``restore_params(path, abstract_params, step=None)``: params only, from a model dir, its checkpoints/ folder or
    one step folder, onto the shardings carried by ``abstract_params``.
  * ``latest_step(model_dir)``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Dict, Optional, Tuple

from absl import logging
import gin
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from skip_t5x.training import checkpoint_compat
from skip_t5x.training.state import TrainState

ITEMS = ("params", "opt_state", "meta")
# OS faults worth putting first in a write error (orbax/tensorstore bury them at the end of long messages).
_OS_FAULTS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied")


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


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (disk full, read-only, ...); the message leads with the OS fault."""


def os_fault(text: str) -> Optional[str]:
  """'No space left on device' (or another OS fault named in `text`), else None."""
  return next((fault for fault in _OS_FAULTS if fault in text), None)


def write_error(step: Optional[int], directory: str, error: Exception) -> CheckpointWriteError:
  text = " ".join(str(error).split())
  fault = os_fault(text)
  where = f"checkpoint step {step}" if step is not None else "a checkpoint"
  detail = f"{fault} ({type(error).__name__}: {text[:300]})" if fault else f"{type(error).__name__}: {text[:500]}"
  return CheckpointWriteError(f"could not write {where} to {directory}: {detail}")


def _ignore_callbacks_into_closed_event_loops() -> None:
  """Keeps stderr readable when a restore fails: orbax then closes its asyncio loop while tensorstore reads are
  still in flight, and each of their completion callbacks raises 'Event loop is closed' as an unraisable
  exception (dozens of tracebacks, none of them the actual error, which restore_latest reports)."""
  previous = sys.unraisablehook
  if getattr(previous, "skips_closed_event_loops", False):
    return

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)

  hook.skips_closed_event_loops = True
  sys.unraisablehook = hook


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
    _ignore_callbacks_into_closed_event_loops()
    self._manager = self._make_manager()

  def _make_manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.config.keep,
        save_interval_steps=1,  # the trainer decides when to save
        enable_async_checkpointing=self.config.async_save,
        create=True,
    )
    handlers = {"params": ocp.StandardCheckpointHandler(), "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}  # registered up front, so step metadata can be read
    return ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS, item_handlers=handlers)

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
    try:
      saved = self._manager.save(
          step,
          args=ocp.args.Composite(
              params=ocp.args.StandardSave(state.params),
              opt_state=ocp.args.StandardSave(state.opt_state),
              meta=ocp.args.JsonSave(meta),
          ),
          force=force,
      )
    except Exception as e:  # pylint: disable=broad-except  # also a failed earlier async save, raised here
      raise write_error(step, self.directory, e) from e
    if saved:
      logging.info("Saving checkpoint at step %d to %s", step, self.directory)
    return saved

  def check_for_errors(self) -> None:
    """Raises CheckpointWriteError if an async save that already ended failed."""
    try:
      self._manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      raise write_error(None, self.directory, e) from e

  def wait(self) -> None:
    """Blocks until pending async saves are committed; raises CheckpointWriteError when one failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise write_error(None, self.directory, e) from e

  def close(self) -> None:
    """Finishes pending saves and releases orbax's threads. A failed save was already raised by `save`/`wait`
    on the normal path; here (also on the way out of an error) it is only logged."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("A checkpoint save in %s failed: %s", self.directory, e)
    try:
      self._manager.close()
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Closing the checkpoint manager of %s failed: %s", self.directory, e)

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

    Returns (state, meta) or None when the directory holds no checkpoint. Each step's saved metadata is compared
    with ``abstract_state`` first: another model or optimizer raises TrainStateMismatchError and touches nothing.
    A checkpoint that fails to read or restore is reported, and the previous one is tried; once one restores, the
    unreadable ones are moved aside (renamed '<step>.corrupt-<time>'). None restorable: CorruptCheckpointError.
    """
    for name in _partial_dirs(self.directory):
      logging.warning("Ignoring partial (interrupted) checkpoint %s", os.path.join(self.directory, name))
    failures = []
    for step in reversed(self.all_steps()):
      try:
        saved = self._manager.metadata(step).item_metadata
        saved_params, saved_opt_state = saved["params"], saved["opt_state"]
        if saved_params is None:
          raise ValueError("no params metadata")
      except Exception as e:  # pylint: disable=broad-except  # unreadable metadata: a damaged checkpoint
        failures.append((step, self._report_unreadable(step, e)))
        continue
      checkpoint_compat.check_compatible(step, self.directory, getattr(saved_params, "tree", saved_params),
                                         getattr(saved_opt_state, "tree", saved_opt_state), abstract_state)
      try:
        state, meta = self._restore_step(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except  # orbax/tensorstore raise many types
        failures.append((step, self._report_unreadable(step, e)))
        continue
      if failures:
        self._move_aside([s for s, _ in failures])
      logging.info("Restored checkpoint step %d from %s", step, self.directory)
      return state, meta
    if failures:
      reasons = "; ".join(f"step {s}: {reason}" for s, reason in failures)
      raise CorruptCheckpointError(f"no restorable checkpoint in {self.directory} ({reasons}); move the damaged "
                                   "step folders aside to start from scratch")
    return None

  def _report_unreadable(self, step: int, error: Exception) -> str:
    reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    message = f"checkpoint step {step} in {self.directory} is corrupt or incomplete ({reason})"
    logging.info("%s; trying the previous one", message)
    print(f"WARNING: {message}; falling back to the previous checkpoint", flush=True)
    return reason

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
