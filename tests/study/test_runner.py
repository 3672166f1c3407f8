"""The study runner with stand-in train/eval commands (no training): finished runs are not run again, a failed run
is reported while the others go on, a preempted training is not taken for finished, and lines carry the prefix."""
import io
import json
import os
import stat
import sys

from skip_t5x.study import layout, spec
from skip_t5x.study.runner import StudyRunner

FAKE = r'''
import json, os, sys
args = sys.argv[1:]
module, flags = args[1], dict(a[2:].split("=", 1) for a in args[2:])
run_dir = flags["model_dir"]
with open(os.environ["FAKE_CALLS"], "a") as f:
  f.write(f"{module} {run_dir}\n")
if os.path.basename(os.path.dirname(run_dir)) == os.environ.get("FAKE_FAIL"):
  print("error: the stand-in command fails for this arm", file=sys.stderr)
  sys.exit(2)
if module == "skip_t5x.train":
  steps = int(flags["gin.TRAIN_STEPS"])
  last = min(steps, int(os.environ.get("FAKE_STOP_AT", steps)))
  os.makedirs(os.path.join(run_dir, "metrics"), exist_ok=True)
  with open(os.path.join(run_dir, "metrics", "train.jsonl"), "w") as f:
    for step in range(2, last + 1, 2):
      f.write(json.dumps({"step": step, "loss": 1.0}) + "\n")
      print(f"step {step}/{steps} | loss 1.0")
else:
  os.makedirs(os.path.join(run_dir, "eval"), exist_ok=True)
  print("evaluated")
'''


def _fake_python(tmp_path):
  script = tmp_path / "fake.py"
  script.write_text(FAKE)
  launcher = tmp_path / "python"
  launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
  launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
  return str(launcher)


def _runner(tmp_path, **env):
  study = spec.Study(name="s", arms=[spec.Arm(name="dense", model="m.gin", family="dense"),
                                     spec.Arm(name="skip", model="m.gin")],
                     train_gin_files=["r.gin"], eval_gin_files=["e.gin"], train_steps=8, batch_size=8,
                     sequence_length=32, reference_arm="dense", method_arm="skip").validate()
  calls = tmp_path / "calls.txt"
  out = io.StringIO()
  runner = StudyRunner(study, study.runs(str(tmp_path / "study")), python=_fake_python(tmp_path),
                       env={**os.environ, "FAKE_CALLS": str(calls), **env}, out=out)
  return runner, out, calls


def _calls(calls):
  return calls.read_text().splitlines() if calls.exists() else []


def test_a_failed_run_is_reported_the_others_finish_and_a_rerun_skips_finished_runs(tmp_path):
  runner, out, calls = _runner(tmp_path, FAKE_FAIL="skip")
  outcome = runner.run()
  dense, skip = (str(tmp_path / "study" / arm / "seed0") for arm in ("dense", "skip"))
  assert [r.key for r in outcome.finished] == ["dense/seed0"] and list(outcome.failed) == ["skip/seed0"]
  assert "train exited with status 2" in outcome.failed["skip/seed0"]
  assert "the stand-in command fails for this arm" in outcome.failed["skip/seed0"]  # the tail of its stderr
  assert os.path.isfile(layout.done_json(dense)) and not os.path.exists(layout.done_json(skip))
  assert json.load(open(layout.arm_json(skip)))["train_command"][2] == "skip_t5x.train"
  assert "[1/2 dense/seed0 | study " in out.getvalue() and "] step 8/8 | loss 1.0" in out.getvalue()
  first_calls = _calls(calls)
  assert first_calls == [f"skip_t5x.train {dense}", f"skip_t5x.eval {dense}", f"skip_t5x.train {skip}"]

  runner, out, calls = _runner(tmp_path)  # the failure is fixed; run the study again
  outcome = runner.run()
  assert [r.key for r in outcome.finished] == ["dense/seed0", "skip/seed0"] and not outcome.failed
  assert _calls(calls)[len(first_calls):] == [f"skip_t5x.train {skip}", f"skip_t5x.eval {skip}"]  # dense not rerun
  assert f"finished earlier: {dense}" in out.getvalue()


def test_training_that_stops_early_is_not_finished(tmp_path):
  runner, _, calls = _runner(tmp_path, FAKE_STOP_AT="4")  # exits 0 at step 4 of 8, as a preempted run does
  outcome = runner.run()
  assert not outcome.finished and set(outcome.failed) == {"dense/seed0", "skip/seed0"}
  assert "training stopped at step 4 of 8" in outcome.failed["dense/seed0"]
  assert not any("skip_t5x.eval" in c for c in _calls(calls))  # no evaluation of an unfinished run
