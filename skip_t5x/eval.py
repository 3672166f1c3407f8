r"""Evaluation entry point (T5X style): 1-shot scores of the latest checkpoint in MODEL_DIR.

  python -m skip_t5x.eval --gin_file=gin/runs/eval.gin --gin.MIXTURE_OR_TASK_NAME="'fewshot_1shot_paper24'" \
      --model_dir=DIR

The model comes from DIR/config.gin (the operative config the training run wrote), parsed before the given gin
files, so the evaluated model is the trained one; pass --nouse_train_config and a gin/models/*.gin file to
define it yourself. Writes DIR/eval/: seqio's per-task JSON logs, summary.json and summary.md. See
docs/evaluation.md.
"""
from __future__ import annotations

import os

from absl import flags

from skip_t5x import gin_utils
from skip_t5x import partitioning
from skip_t5x import train as train_lib



def _define_flags() -> None:
  gin_utils.define_flags()
  definitions = (
      (flags.DEFINE_string, "model_dir", None, "Model directory holding checkpoints/ (sets MODEL_DIR)."),
      (flags.DEFINE_bool, "use_train_config", True, "Parse MODEL_DIR/config.gin (the training config) first."),
      (flags.DEFINE_string, "coordinator_address", None, "host:port of process 0 (multi-process runs)."),
      (flags.DEFINE_integer, "num_processes", None, "Number of processes (multi-process runs)."),
      (flags.DEFINE_integer, "process_id", None, "This process's id in [0, num_processes)."),
  )
  for define, name, default, help_text in definitions:
    if name not in flags.FLAGS:  # idempotent: tests may define the flags of several entry points
      define(name, default, help_text)


def gin_files_for(model_dir: str, gin_files, use_train_config: bool) -> list:
  """The training config (when present and wanted) followed by the given files, so the latter win."""
  return gin_utils.train_config_first(model_dir, gin_files, use_train_config)


def main(argv) -> None:
  model_dir = train_lib.require_model_dir(argv)
  fl = flags.FLAGS
  from skip_t5x import evaluation  # pylint: disable=import-outside-toplevel  (registers `evaluate`)

  train_lib.quiet_logs_unless_verbose()
  try:
    train_lib.parse_trained_run_gin(gin_files_for(model_dir, fl.gin_file, fl.use_train_config))
    partitioning.initialize_distributed(train_lib.distributed_from_flags())
    summary = evaluation.evaluate()
  except (gin_utils.GinConfigError, ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from e
  from skip_t5x import eval_summary  # pylint: disable=import-outside-toplevel

  output_dir = summary["output_dir"]
  print(eval_summary.markdown(summary), flush=True)
  print(f"Wrote {os.path.join(output_dir, eval_summary.SUMMARY_JSON)} and "
        f"{os.path.join(output_dir, eval_summary.SUMMARY_MD)}", flush=True)


def console_entry() -> None:
  _define_flags()
  gin_utils.run(main)


if __name__ == "__main__":
  console_entry()
