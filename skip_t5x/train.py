r"""Training command (T5X style).

  python -m skip_t5x.train --gin_file=gin/runs/pretrain.gin --gin_file=gin/models/skip_small.gin \
      --gin.SKIP_RATIO=0.5 --model_dir=DIR

Writes DIR/config.gin, DIR/checkpoints/, DIR/metrics/train.jsonl and DIR/tensorboard/. Restarting with the same
DIR resumes from the latest checkpoint. SIGTERM saves a checkpoint and exits 0. The loop is
skip_t5x/training/loop.py (gin: ``train.*``); see docs/training.md.
"""
from __future__ import annotations

from skip_t5x import cli


def main(argv) -> None:
  model_dir = cli.require_model_dir(argv)
  cli.quiet_logs_unless_verbose()
  from skip_t5x import training  # pylint: disable=g-import-not-at-top
  from skip_t5x.training import metrics_logging  # pylint: disable=g-import-not-at-top

  with cli.command_errors(*training.FAULTS):
    cli.parse_gin_for_training(model_dir)
    cli.start_distributed()
    result = training.train()
  metrics_logging.print_results_location(model_dir)
  if result.preempted:
    print("Preempted: run the same command again to resume.", flush=True)


def console_entry() -> None:
  cli.run(main)


if __name__ == "__main__":
  console_entry()
