"""The input pipeline's position, saved per process beside each orbax checkpoint, so a resume costs O(1) reads.

Layout: ``MODEL_DIR/checkpoints/<step>.data/process_<i>-of-<n>.*``: a tf.data iterator checkpoint (shuffle and
prefetch buffers included) plus ``process_<i>-of-<n>.json`` (step, data position, dataset), written last, which
marks the files complete. Each process writes its own before the orbax save of that step starts, so a committed
orbax step always has them. A resume restores the position when the files match this run (same step, process
count and dataset); otherwise (an older checkpoint, another process count, a damaged file, a pipeline that cannot
be checkpointed) it says why and skips ahead instead, which is exact but re-reads every consumed batch.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Optional

from absl import logging
import tensorflow as tf

from skip_t5x.training.checkpoints import write_error
from skip_t5x.training.input_pipeline import TrainBatches

SUFFIX = ".data"


class DataStates:
  """The saved positions of one process's TrainBatches under a checkpoint directory."""

  def __init__(self, checkpoint_dir: str, process_index: int, process_count: int):
    self.checkpoint_dir = checkpoint_dir
    self.name = f"process_{process_index}-of-{process_count}"
    self.process_index = process_index
    self.unsaveable: Optional[str] = None  # why this pipeline's position cannot be saved, once known

  def step_dir(self, step: int) -> str:
    return os.path.join(self.checkpoint_dir, f"{step}{SUFFIX}")

  @staticmethod
  def _description(batches: TrainBatches, step: int, data_position: int) -> dict:
    return {"step": int(step), "data_position": int(data_position), "dataset": repr(batches.config)}

  def save(self, step: int, batches: TrainBatches, data_position: int) -> bool:
    """Writes this process's position at `step`; False (with one warning per run) when the pipeline cannot be
    checkpointed. A failed write (disk full, ...) raises CheckpointWriteError."""
    if self.unsaveable is not None:
      return False
    folder = self.step_dir(step)
    prefix = os.path.join(folder, self.name)
    unsaveable = None
    try:
      tf.io.gfile.makedirs(folder)
      if tf.io.gfile.exists(f"{prefix}.json"):  # an older save at this step: unmark it before overwriting it
        tf.io.gfile.remove(f"{prefix}.json")
      batches.checkpoint().write(prefix)
      with tf.io.gfile.GFile(f"{prefix}.json", "w") as f:
        f.write(json.dumps(self._description(batches, step, data_position)))
    except (tf.errors.FailedPreconditionError, tf.errors.UnimplementedError) as e:  # e.g. a Python generator
      unsaveable = " ".join(str(e).split())[:200]
    except (tf.errors.OpError, OSError) as e:
      raise write_error(step, folder, e) from None
    if unsaveable is not None:
      self.unsaveable = unsaveable
      logging.warning("The input pipeline's position cannot be saved (%s); resumes will skip ahead instead",
                      self.unsaveable)
      if self.process_index == 0:
        print(f"Note: the input pipeline cannot be checkpointed ({self.unsaveable}); a resume will re-read the "
              "consumed batches", flush=True)
      return False
    return True

  def restore(self, step: int, batches: TrainBatches, data_position: int) -> Optional[str]:
    """Restores the position saved at `step`; returns None on success, else why it could not."""
    prefix = os.path.join(self.step_dir(step), self.name)
    if not tf.io.gfile.exists(f"{prefix}.json"):
      return f"no saved input position for {self.name} at step {step}"
    try:
      with tf.io.gfile.GFile(f"{prefix}.json") as f:
        saved = json.load(f)
    except (ValueError, tf.errors.OpError) as e:
      return f"unreadable {prefix}.json ({e})"
    expected = self._description(batches, step, data_position)
    if saved != expected:
      changed = sorted(k for k in expected if saved.get(k) != expected[k])
      return f"the saved input position at step {step} is for another {'/'.join(changed)}"
    try:
      batches.checkpoint().read(prefix).assert_consumed()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
      batches.skip_to(0)  # a half-applied restore must not be used
      return f"the saved input position at step {step} could not be restored ({type(e).__name__}: {str(e)[:200]})"
    return None

  def resume(self, step: int, batches: TrainBatches, data_position: int, say=print) -> None:
    """Positions `batches` after `data_position` batches: the saved position if it fits, else by skipping."""
    if data_position == 0:
      return
    reason = self.restore(step, batches, data_position)
    if reason is None:
      logging.info("Restored the input position at step %d (%d batches consumed)", step, data_position)
      return
    say(f"Input pipeline: {reason}; re-reading the {data_position} consumed batches instead")
    batches.skip_to(data_position)

  def prune(self, keep_steps: Iterable[int]) -> None:
    """Removes the saved positions of steps no longer kept (process 0; the folders are shared)."""
    if self.process_index != 0 or not tf.io.gfile.isdir(self.checkpoint_dir):
      return
    keep = {int(s) for s in keep_steps}
    for name in tf.io.gfile.listdir(self.checkpoint_dir):
      name = name.rstrip("/")
      if name.endswith(SUFFIX) and name[:-len(SUFFIX)].isdigit() and int(name[:-len(SUFFIX)]) not in keep:
        tf.io.gfile.rmtree(os.path.join(self.checkpoint_dir, name))
