"""Resume cost: how much data a resumed run reads, and how long until its first step, at step 10 and step 2000.

    python bench/resume.py --out bench/resume.json [--steps 10,2000]

For each resume step N, the tiny skip model trains N steps on a counting task (one source element per row, rows
in order), checkpointing at N. Two copies of that run directory are then resumed for one step:
  * `restore`: the trainer restores the input position saved beside checkpoint N (training/data_state.py);
  * `skip`: the saved position is removed first, so the trainer falls back to re-reading the N consumed batches.
Each row: mode, resume_step, elements_read (source elements pulled from creating the batch stream to the first
batch handed to the step), batches_read (the same in batches), seconds_to_first_step (the trainer's own measure:
restore + input position + compile (cached) + the first step). batches_read must not grow with N for `restore`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gin  # noqa: E402
import seqio  # noqa: E402
import tensorflow as tf  # noqa: E402

from skip_t5x import gin_utils  # noqa: E402
from skip_t5x import training  # noqa: E402
from skip_t5x.training import input_pipeline  # noqa: E402

TASK = "bench_resume_counting_lm"
BATCH, LENGTH = 8, 32
_pulled = itertools.count()  # source elements read, by every pipeline of this process
_read = {"next": 0}


def _count(row):
  _read["next"] = next(_pulled) + 1
  return row


def register_counting_task() -> None:
  """Rows of LENGTH tokens, a pure function of their index; every element pulled from the source is counted."""

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    rows = tf.data.Dataset.range(10**9).map(
        lambda i: 3 + tf.cast((i * 7 + tf.range(LENGTH - 1, dtype=tf.int64)) % 250, tf.int32))
    counted = lambda r: tf.ensure_shape(tf.numpy_function(_count, [r], tf.int32, stateful=False), [LENGTH - 1])
    return rows.map(lambda r: {"targets": counted(r)})

  if TASK in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(TASK)
  seqio.TaskRegistry.add(TASK, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]), preprocessors=[],
                         output_features={"targets": seqio.Feature(seqio.ByteVocabulary(), add_eos=True)},
                         metric_fns=[])


def _train(model_dir: str, steps: int):
  """The tiny skip model on one host's devices, checkpointing only at the end (and at `steps`)."""
  gin.clear_config()
  bindings = [f"MODEL_DIR = '{model_dir}'", f"MIXTURE_OR_TASK_NAME = '{TASK}'",
              f"TASK_FEATURE_LENGTHS = {{'targets': {LENGTH}}}", f"TRAIN_STEPS = {steps}", f"BATCH_SIZE = {BATCH}",
              "CHECKPOINT_PERIOD = 100000", "LOG_EVERY_STEPS = 100000", "train.tensorboard = False",
              "train/DatasetConfig.shuffle = False", "train/DatasetConfig.pack = False",
              "CheckpointConfig.async_save = False"]
  gin_utils.parse_gin(["runs/pretrain.gin", "models/skip_tiny.gin"], bindings, finalize=False)
  try:
    return training.train()
  finally:
    gin.clear_config()


def measure_resume(model_dir: str, step: int) -> dict:
  """Resumes `model_dir` (at `step`) for one step; counts the source elements read before the first batch."""
  marks = {}
  original_init, original_next = input_pipeline.TrainBatches.__init__, input_pipeline.TrainBatches.__next__

  def init(self, *args, **kwargs):
    marks.setdefault("created", _read["next"])
    original_init(self, *args, **kwargs)

  def first_next(self):
    batch = original_next(self)
    marks.setdefault("first_batch", _read["next"])
    return batch

  input_pipeline.TrainBatches.__init__, input_pipeline.TrainBatches.__next__ = init, first_next
  try:
    result = _train(model_dir, step + 1)
  finally:
    input_pipeline.TrainBatches.__init__, input_pipeline.TrainBatches.__next__ = original_init, original_next
  assert result.resumed_from == step and result.step == step + 1
  elements = marks["first_batch"] - marks["created"]
  return {"resume_step": step, "elements_read": elements, "batches_read": round(elements / BATCH, 2),
          "seconds_to_first_step": round(result.first_step_seconds, 3)}


def run(steps, workdir: str) -> list:
  register_counting_task()
  rows = []
  for step in steps:
    trained = os.path.join(workdir, f"trained_{step}")
    _train(trained, step)
    for mode in ("restore", "skip"):
      model_dir = os.path.join(workdir, f"{mode}_{step}")
      shutil.copytree(trained, model_dir)
      if mode == "skip":
        shutil.rmtree(os.path.join(model_dir, "checkpoints", f"{step}.data"))
      rows.append({"mode": mode, **measure_resume(model_dir, step)})
      print(json.dumps(rows[-1]), flush=True)
  return rows


def format_table(rows) -> str:
  lines = ["| mode | resume_step | elements_read | batches_read | seconds_to_first_step |", "|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['mode']} | {r['resume_step']} | {r['elements_read']} | {r['batches_read']} | "
                 f"{r['seconds_to_first_step']} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="JSON file for the rows")
  parser.add_argument("--steps", default="10,2000", help="comma-separated resume steps")
  args = parser.parse_args(argv)
  steps = [int(s) for s in args.steps.split(",")]
  with tempfile.TemporaryDirectory() as workdir:
    rows = run(steps, workdir)
  restored = {r["resume_step"]: r["batches_read"] for r in rows if r["mode"] == "restore"}
  print(format_table(rows))
  with open(args.out, "w") as f:
    json.dump(rows, f, indent=1)
  if max(restored.values()) > min(restored.values()) + 1:
    print(f"error: batches read on restore grow with the resume step: {restored}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
