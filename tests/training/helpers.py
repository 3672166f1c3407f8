"""Shared helpers of the trainer tests: a tiny local seqio task and in-process gin runs."""
from __future__ import annotations

import os
from typing import Sequence

import gin

from skip_t5x import gin_utils
from tests.training import tiny_task
from tests.training.tiny_task import write_corpus  # noqa: F401  (re-exported for the tests)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
TINY_TASK = tiny_task.TINY_TASK

def register_tiny_task(corpus_path: str, name: str = TINY_TASK) -> str:
  """A real seqio task over a local text file (see tiny_task.py)."""
  return tiny_task.register(corpus_path, name)


def tiny_run_bindings(model_dir: str, *, steps: int = 6, batch: int = 8, length: int = 32, mesh=(4, 1, 2),
                      period: int = 1000, log_every: int = 1, async_save: bool = False,
                      extra: Sequence[str] = ()) -> list:
  """Command-line style bindings for a tiny run on TINY_TASK."""
  data, fsdp, model = mesh
  return [
      f"MODEL_DIR = '{model_dir}'",
      f"MIXTURE_OR_TASK_NAME = '{TINY_TASK}'",
      f"TASK_FEATURE_LENGTHS = {{'targets': {length}}}",
      f"TRAIN_STEPS = {steps}",
      f"BATCH_SIZE = {batch}",
      f"MESH_DATA = {data}",
      f"MESH_FSDP = {fsdp}",
      f"MESH_MODEL = {model}",
      "LEARNING_RATE = 0.01",
      "WARMUP_STEPS = 2",
      f"CHECKPOINT_PERIOD = {period}",
      "KEEP_CHECKPOINTS = 3",
      f"LOG_EVERY_STEPS = {log_every}",
      "train.tensorboard = True",
      f"CheckpointConfig.async_save = {async_save}",
      *extra,
  ]


TINY_FILES = ("runs/pretrain.gin", "models/skip_tiny.gin")


def parse(files: Sequence[str] = TINY_FILES, bindings: Sequence[str] = ()) -> None:
  """Fresh gin state, then the project's parse + validation."""
  import skip_t5x.model.decoder_only  # noqa: F401  registers the model configurables
  import skip_t5x.training  # noqa: F401

  gin.clear_config()
  gin_utils.parse_gin(list(files), list(bindings), finalize=False)


def train_in_process(model_dir: str, files: Sequence[str] = TINY_FILES, **kwargs):
  """Parses the tiny run config and calls skip_t5x.train.train() in this process."""
  from skip_t5x import training as train_lib

  parse(files, tiny_run_bindings(model_dir, **kwargs))
  try:
    return train_lib.train()
  finally:
    gin.clear_config()
