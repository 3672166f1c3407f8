r"""Evaluation command (T5X style): 1-shot scores of the latest checkpoint in MODEL_DIR.

  python -m skip_t5x.eval --gin_file=gin/runs/eval.gin --gin.MIXTURE_OR_TASK_NAME="'fewshot_1shot_paper24'" \
      --model_dir=DIR

The model comes from DIR/config.gin (the operative config the training run wrote), parsed before the given gin
files, so the evaluated model is the trained one; pass --nouse_train_config and a gin/models/*.gin file to
define it yourself. Writes DIR/eval/: seqio's per-task JSON logs, summary.json and summary.md. The work is
skip_t5x/evaluation/evaluate.py (gin: ``evaluate.*``); see docs/evaluation.md.
"""
from __future__ import annotations

import os

from absl import flags

from skip_t5x import cli


def main(argv) -> None:
  model_dir = cli.require_model_dir(argv)
  cli.require_trained_run(model_dir)
  cli.quiet_logs_unless_verbose()
  from skip_t5x.evaluation import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from skip_t5x.evaluation import summary as summary_lib  # pylint: disable=g-import-not-at-top

  with cli.command_errors():
    cli.parse_gin_for_trained_run(model_dir, flags.FLAGS.gin_file)
    cli.start_distributed()
    summary = evaluate_lib.evaluate()
  output_dir = summary["output_dir"]
  print(summary_lib.markdown(summary), flush=True)
  print(f"Wrote {os.path.join(output_dir, summary_lib.SUMMARY_JSON)} and "
        f"{os.path.join(output_dir, summary_lib.SUMMARY_MD)}", flush=True)


def console_entry() -> None:
  cli.run(main)


if __name__ == "__main__":
  console_entry()
