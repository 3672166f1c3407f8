r"""Study command: trains and evaluates every arm of a study, then writes its report.

  python -m skip_t5x.study --gin_file=gin/studies/paper_cpu.gin --study_dir=runs/paper_cpu
  python -m skip_t5x.study --gin_file=gin/studies/quick_cpu.gin --study_dir=runs/quick --gin.SEEDS="(0, 1)"
  python -m skip_t5x.study --gin_file=gin/studies/paper_tpu.gin --gin.STUDY_ARMS="('skip_p50_400m',)" \
      --gin.SEEDS="(0,)" --model_dir=gs://bucket/paper-study/skip_p50_400m/seed0      # one work unit

Each run is STUDY_DIR/<arm>/seed<k>/, made by `python -m skip_t5x.train` and `python -m skip_t5x.eval`
subprocesses. Running the command again resumes: finished runs are kept, an interrupted one resumes from its
checkpoint. --model_dir runs a single selected arm and seed there and writes no report (launchers use it; build the
report afterwards with `python -m skip_t5x.report DIR...`). See docs/study.md.
"""
from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up INFO and WARNING lines (oneDNN, CUDA probing) would bury the study's progress lines
# (unless the user sets the variable); the train and eval subcommands inherit the setting.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402  (after the environment above)
from absl import logging  # noqa: E402

from skip_t5x import gin_utils  # noqa: E402


def define_flags() -> None:
  gin_utils.define_flags()
  if "study_dir" not in flags.FLAGS:
    flags.DEFINE_string("study_dir", None, "Where the runs and the report go: STUDY_DIR/<arm>/seed<k>/, report.md.")
  if "model_dir" not in flags.FLAGS:
    flags.DEFINE_string("model_dir", None, "Run one selected arm and seed in this directory (no report).")
  if "report" not in flags.FLAGS:
    flags.DEFINE_bool("report", True, "Write the report when the runs are done.")


def main(argv) -> None:
  if len(argv) > 1:
    raise SystemExit(f"error: unexpected arguments {list(argv[1:])}")
  fl = flags.FLAGS
  if not fl["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # the runs' progress lines, not library warnings
  from skip_t5x.study import configs, runner, session  # pylint: disable=g-import-not-at-top

  try:
    study = configs.load_study(fl.gin_file, fl.gin_bindings, fl.gin_search_paths)
    status = session.run_study(study, fl.study_dir, model_dir=fl.model_dir, search_paths=fl.gin_search_paths,
                               write_report=fl.report)
  except (gin_utils.GinConfigError, ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    raise SystemExit(2) from e
  except runner.StudyInterrupted as e:
    print(str(e), file=sys.stderr, flush=True)
    raise SystemExit(130) from e
  raise SystemExit(status)


def console_entry() -> None:
  define_flags()
  gin_utils.run(main)


if __name__ == "__main__":
  console_entry()
