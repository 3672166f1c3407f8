r"""Inference command: restore a checkpoint and continue prompts (greedy or sampled).

  python -m skip_t5x.infer --model_dir=runs/demo --prompt="The quick brown fox"
  python -m skip_t5x.infer --gin_file=gin/models/skip_small.gin --nouse_train_config --model_dir=DIR \
      --prompt="..." --gin.infer.temperature=0.7

Gin files, in order (later wins): MODEL_DIR/config.gin (the training run's operative config, unless
--nouse_train_config), gin/runs/infer.gin, then --gin_file. Prints each continuation and, per routed module, the
share of the prompt + continuation tokens that executed it. The work is skip_t5x/evaluation/generation.py.
"""
from __future__ import annotations

from absl import flags

from skip_t5x import cli

INFER_GIN = "runs/infer.gin"


def _define_flags() -> None:
  cli.define_flags()
  if "prompt" not in flags.FLAGS:
    flags.DEFINE_multi_string("prompt", [], "Prompt text; repeatable (one row per prompt).")


def main(argv) -> None:
  model_dir = cli.require_model_dir(argv)
  cli.require_trained_run(model_dir)
  fl = flags.FLAGS
  cli.quiet_logs_unless_verbose()
  from skip_t5x.evaluation import generation  # pylint: disable=g-import-not-at-top

  with cli.command_errors():
    cli.parse_gin_for_trained_run(model_dir, [INFER_GIN, *fl.gin_file])
    cli.start_distributed()
    results = generation.infer(prompts=tuple(fl.prompt))
  print(generation.format_results(results), flush=True)


def console_entry() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  console_entry()
