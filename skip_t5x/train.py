r"""Training entry point (T5X style).

  python -m skip_t5x.train --gin_file=gin/runs/pretrain.gin --gin_file=gin/models/skip_small.gin \
      --gin.SKIP_RATIO=0.5 --model_dir=DIR

Writes DIR/config.gin, DIR/checkpoints/, DIR/metrics/train.jsonl and DIR/tensorboard/. Restarting with the same
DIR resumes from the latest checkpoint. SIGTERM saves a checkpoint and exits 0. The loop itself is
skip_t5x.training.train (gin: ``train.*``); see docs/training.md.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from absl import flags
from absl import logging

from skip_t5x import gin_utils
from skip_t5x import metrics_logging
from skip_t5x import partitioning


def _define_flags() -> None:
  gin_utils.define_flags()
  flags.DEFINE_string("model_dir", None, "Where checkpoints, metrics and config.gin go (sets MODEL_DIR).")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
  flags.DEFINE_integer("process_id", None, "This process's id in [0, num_processes).")


def quiet_logs_unless_verbose() -> None:
  """absl logs INFO to stderr by default; keep the console to progress lines unless --verbosity is given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def import_registrations() -> None:
  """Imports the modules whose import registers gin configurables and seqio tasks."""
  import skip_t5x.data.tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import skip_t5x.models  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import skip_t5x.training  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import


def distributed_from_flags() -> partitioning.DistributedConfig:
  fl = flags.FLAGS
  base = partitioning.DistributedConfig()
  return dataclasses.replace(
      base,
      coordinator_address=fl.coordinator_address or base.coordinator_address,
      num_processes=fl.num_processes or base.num_processes,
      process_id=fl.process_id if fl.process_id is not None else base.process_id,
  )


def require_model_dir(argv) -> str:
  """The --model_dir of an entry point; no positional arguments allowed."""
  if len(argv) > 1:
    raise SystemExit(f"error: unexpected arguments {argv[1:]}")
  if not flags.FLAGS.model_dir:
    raise SystemExit("error: --model_dir is required")
  return flags.FLAGS.model_dir


def parse_trained_run_gin(gin_files: Sequence[str]) -> None:
  """eval / infer: registers configurables, then parses `gin_files` (the training run's config.gin first, from
  gin_utils.train_config_first), --gin_bindings and --gin_search_paths, with MODEL_DIR set."""
  fl = flags.FLAGS
  import_registrations()
  gin_utils.parse_gin(gin_files, fl.gin_bindings, fl.gin_search_paths, extra_bindings={"MODEL_DIR": fl.model_dir})


def main(argv) -> None:
  model_dir = require_model_dir(argv)
  quiet_logs_unless_verbose()
  from skip_t5x import training  # pylint: disable=g-import-not-at-top

  try:
    import_registrations()
    gin_utils.parse_gin_flags(extra_bindings={"MODEL_DIR": model_dir})
    partitioning.initialize_distributed(distributed_from_flags())
    result = training.train()
  except (gin_utils.GinConfigError, ValueError, FileNotFoundError, training.NonFiniteLossError) as e:
    raise SystemExit(f"error: {e}") from e
  metrics_logging.print_results_location(model_dir)
  if result.preempted:
    print("Preempted: run the same command again to resume.", flush=True)


def console_entry() -> None:
  _define_flags()
  gin_utils.run(main)


if __name__ == "__main__":
  console_entry()
