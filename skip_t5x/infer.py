r"""Inference entry point: restore a checkpoint and continue prompts (greedy or sampled).

  python -m skip_t5x.infer --model_dir=runs/demo --prompt="The quick brown fox"
  python -m skip_t5x.infer --gin_file=gin/models/skip_small.gin --nouse_train_config --model_dir=DIR \
      --prompt="..." --gin.infer.temperature=0.7

Gin files, in order (later wins): MODEL_DIR/config.gin (the training run's operative config, unless
--nouse_train_config), gin/runs/infer.gin, then --gin_file. Prints each continuation and, per routed module, the
share of the prompt + continuation tokens that executed it. The work is skip_t5x.inference.infer.
"""
from __future__ import annotations

from typing import List, Sequence

from absl import flags

from skip_t5x import gin_utils

INFER_GIN = "runs/infer.gin"


def _define_flags() -> None:
  gin_utils.define_flags()
  flags.DEFINE_string("model_dir", None, "Model directory holding checkpoints/ (sets MODEL_DIR).")
  flags.DEFINE_multi_string("prompt", [], "Prompt text; repeatable (one row per prompt).")
  flags.DEFINE_bool("use_train_config", True, "Parse MODEL_DIR/config.gin (the training config) first.")


def gin_files_for(model_dir: str, gin_files: Sequence[str], use_train_config: bool) -> List[str]:
  """MODEL_DIR/config.gin (when present and wanted), runs/infer.gin, then the given files."""
  return gin_utils.train_config_first(model_dir, [INFER_GIN, *gin_files], use_train_config)


def main(argv) -> None:
  from skip_t5x import inference  # pylint: disable=g-import-not-at-top
  from skip_t5x import train as train_lib  # pylint: disable=g-import-not-at-top

  model_dir = train_lib.require_model_dir(argv)
  fl = flags.FLAGS
  train_lib.quiet_logs_unless_verbose()
  try:
    train_lib.parse_trained_run_gin(gin_files_for(model_dir, fl.gin_file, fl.use_train_config))
    results = inference.infer(prompts=tuple(fl.prompt))
  except (gin_utils.GinConfigError, ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from e
  print(inference.format_results(results), flush=True)


def console_entry() -> None:
  _define_flags()
  gin_utils.run(main)


if __name__ == "__main__":
  console_entry()
