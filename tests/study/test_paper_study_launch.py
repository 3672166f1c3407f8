"""The paper study as TPU work units: the dry run has one `python -m skip_t5x.study` per arm and seed, each selecting
exactly that arm and seed, in its own run directory, and the selection parses back to that one run."""
import os
import shlex

from launch.__main__ import main
from skip_t5x.study import configs, session

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENT = "launch/experiments/paper_study.py"


def _remote_argv(line):
  words = shlex.split(line.split("] ", 1)[1])
  command = [w for w in words if w.startswith("--command=")]
  return shlex.split(command[0][len("--command="):])


def test_dry_run_has_one_work_unit_per_arm_and_seed(capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  assert main(["tpu_vm", EXPERIMENT, "--set", "model_dir=gs://b/{name}/{STUDY_ARMS}/seed{SEEDS}"]) == 0
  runs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[run] ")]
  study = configs.load_study([os.path.join(REPO, "gin/studies/paper_tpu.gin")])
  expected = [(arm.name, seed) for arm in study.expanded_arms() for seed in study.seeds]
  assert len(runs) == len(expected) == 27 * 2
  seen = []
  for line, (arm, seed) in zip(runs, expected):
    argv = _remote_argv(line)
    flags = argv[argv.index("skip_t5x.study") + 1:]
    assert flags[0] == "--gin_file=gin/studies/paper_tpu.gin"
    assert f'--gin.STUDY_ARMS=("{arm}",)' in flags and f"--gin.SEEDS=({seed},)" in flags
    model_dir = f"gs://b/paper-study/{arm}/seed{seed}"
    assert flags[-1] == f"--model_dir={model_dir}"
    bindings = [f[len("--gin."):].replace("=", " = ", 1) for f in flags if f.startswith("--gin.")]
    selected = session.plan_runs(configs.load_study([os.path.join(REPO, flags[0].split("=", 1)[1])], bindings),
                                 None, model_dir)
    assert [(r.arm.name, r.seed, r.run_dir) for r in selected] == [(arm, seed, model_dir)]
    seen.append((arm, seed))
  assert len(set(seen)) == len(expected)
