"""Study specs: the shipped study files, arm expansion and depth, the exact train/eval command lines, refusals of
bad input before anything runs, and the progress arithmetic."""
import os

import pytest

from skip_t5x.study import configs, session, spec
from skip_t5x.study.progress import TRAIN_SHARE, StudyProgress

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_study.gin")
PAPER_ARMS = ["dense_matched", "dense_full", "skip_p50", "skip_p25", "random_p50", "early_exit_p50", "mod_p50",
              "skip_attn_p50", "skip_ffn_p50"]


def _study(**changes):
  fields = dict(name="s", arms=[spec.Arm(name="dense", model="models/dense_tiny.gin", depth=0.5, family="dense"),
                                spec.Arm(name="skip", model="models/skip_tiny.gin")],
                train_gin_files=["runs/demo.gin"], eval_gin_files=["runs/demo_eval.gin"], train_steps=8,
                batch_size=8, sequence_length=32, reference_arm="dense", method_arm="skip")
  fields.update(changes)
  return spec.Study(**fields)


def test_paper_cpu_study_has_every_arm_two_seeds_one_budget_and_matched_depths():
  study = configs.load_study([os.path.join(REPO, "gin/studies/paper_cpu.gin")])
  assert [a.name for a in study.arms] == PAPER_ARMS and len(study.seeds) >= 2
  runs = session.plan_runs(study, "/tmp/paper", None)
  assert len(runs) == len(PAPER_ARMS) * len(study.seeds)
  by_name = {r.arm.name: r for r in runs}
  # models/*_small.gin have L = 4 layers: matched dense round(4 x 0.5) = 2, the P = 0.25 method 4 x 2 = 8.
  assert by_name["dense_matched"].arm.overrides["DecoderConfig.num_layers"] == 2
  assert by_name["skip_p25"].arm.overrides == {"SKIP_RATIO": 0.75, "DecoderConfig.num_layers": 8}
  for run in runs:
    argv = spec.train_argv(study, run, "python")
    assert argv[-1] == f"--model_dir=/tmp/paper/{run.arm.name}/seed{run.seed}"
    assert argv[-5:-1] == ["--gin.TRAIN_STEPS=150", "--gin.BATCH_SIZE=8",
                           "--gin.TASK_FEATURE_LENGTHS={'targets': 128}", f"--gin.SEED={run.seed}"]
    assert not any(a.startswith(("--gin.TRAIN_STEPS", "--gin.BATCH_SIZE")) for a in argv[:-5])  # nothing overrides it
  session.check_runs(study, runs)  # every arm's training config builds (baselines' knobs included)


def test_paper_tpu_study_expands_arms_per_size():
  study = configs.load_study([os.path.join(REPO, "gin/studies/paper_tpu.gin")])
  arms = study.expanded_arms()
  assert len(arms) == 3 * len(PAPER_ARMS)
  assert [a.name for a in arms[:2]] == ["dense_matched_400m", "dense_full_400m"]
  assert {a.model for a in arms if a.base_name == "skip_p50"} == {
      "models/skip_400m.gin", "models/skip_1p7b.gin", "models/skip_5p8b.gin"}
  assert all(os.path.isfile(os.path.join(REPO, "gin", a.model)) for a in arms)
  assert study.eval_mixtures == ("fewshot_1shot_paper24", "fewshot_1shot_all29")
  depths = {a.name: a.overrides.get("DecoderConfig.num_layers") for a in configs.resolve_arms(study)}
  assert (depths["dense_matched_400m"], depths["dense_matched_1p7b"], depths["skip_p25_5p8b"]) == (6, 7, 24)


def test_commands_are_what_a_user_would_type():
  study = _study(eval_mixtures=("embedded_fewshot", "fewshot_1shot_all29"), train_overrides={"LOG_EVERY_STEPS": 2},
                 eval_overrides={"EVAL_BATCH_SIZE": 8})
  run = study.runs("/s")[1]
  assert run.run_dir == "/s/skip/seed0" and run.key == "skip/seed0"
  assert spec.train_argv(study, run, "py") == [
      "py", "-m", "skip_t5x.train", "--gin_file=runs/demo.gin", "--gin_file=models/skip_tiny.gin",
      "--gin.LOG_EVERY_STEPS=2", "--gin.TRAIN_STEPS=8", "--gin.BATCH_SIZE=8",
      "--gin.TASK_FEATURE_LENGTHS={'targets': 32}", "--gin.SEED=0", "--model_dir=/s/skip/seed0"]
  (first, argv1), (second, argv2) = spec.eval_argvs(study, run, "py")
  assert argv1 == ["py", "-m", "skip_t5x.eval", "--gin_file=runs/demo_eval.gin",
                   "--gin.MIXTURE_OR_TASK_NAME='embedded_fewshot'", "--gin.EVAL_BATCH_SIZE=8",
                   "--model_dir=/s/skip/seed0"]
  assert "--gin.evaluate.output_dir='/s/skip/seed0/eval_fewshot_1shot_all29'" in argv2
  assert spec.StudyArm("a", "a", "", "m.gin", {}, 0.5, "dense", "a").with_num_layers(7).overrides == {
      "DecoderConfig.num_layers": 4}  # round(3.5) = 4 (Python rounds halves to even; 3.5 -> 4)


@pytest.mark.parametrize("changes, message", [
    (dict(arms=[spec.Arm(name="skip", model="models/skip_tiny.gin", overrides={"TRAIN_STEPS": 5})]),
     "arm 'skip' overrides TRAIN_STEPS"),
    (dict(train_overrides={"BATCH_SIZE": 4}), "Study.train_overrides sets BATCH_SIZE"),
    (dict(reference_arm="dense_full"), "Study.reference_arm='dense_full' is not one of the arms"),
    (dict(only_arms=("skp",)), "STUDY_ARMS names 'skp'"),
    (dict(seeds=(0, 0)), "Study.seeds=(0, 0)"),
    (dict(arms=[spec.Arm(name="Bad Name", model="m.gin")]), "arm name 'Bad Name'"),
    (dict(arms=[spec.Arm(name="x", model="m.gin", family="hope")]), "family='hope'"),
    (dict(train_steps=0), "Study.train_steps=0"),
])
def test_bad_studies_are_refused_naming_the_value(changes, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    _study(**changes).validate()


def test_a_mistyped_arm_override_is_refused_before_anything_runs(tmp_path):
  study = _study(arms=[spec.Arm(name="dense", model="models/dense_tiny.gin", family="dense"),
                       spec.Arm(name="skip", model="models/skip_tiny.gin", overrides={"SKIP_RATO": 0.5})])
  runs = session.plan_runs(study.validate(), str(tmp_path), None)
  with pytest.raises(ValueError, match="arm 'skip' .*SKIP_RATO"):
    session.check_runs(study, runs)
  assert not os.listdir(tmp_path)  # nothing was written


def test_model_dir_runs_exactly_one_selected_arm_and_seed():
  study = configs.load_study([TINY], ["STUDY_ARMS = ('skip',)"])
  runs = session.plan_runs(study, None, "/unit")
  assert [(r.arm.name, r.seed, r.run_dir) for r in runs] == [("skip", 0, "/unit")]
  with pytest.raises(ValueError, match="runs one arm and one seed"):
    session.plan_runs(configs.load_study([TINY]), None, "/unit")


def test_progress_counts_training_steps_and_estimates_from_this_sessions_work():
  now = [0.0]
  progress = StudyProgress(total_runs=4, clock=lambda: now[0])
  progress.skip()  # one run finished by an earlier session: done, but it took no time now
  progress.observe("a/seed0", "step 50/100 | loss 3.0 | ETA 0:00:10")
  now[0] = 30.0
  share, eta = progress.overall()
  work = TRAIN_SHARE * 0.5
  assert share == pytest.approx((1 + work) / 4)
  assert eta == pytest.approx(30.0 / work * (4 - 1 - work))
  assert progress.prefix(2, "a/seed0").startswith("[2/4 a/seed0 | study 34%, ETA ")
  progress.observe("a/seed0", "Model: 0.39M params")  # not a step line: no change
  assert progress.overall()[0] == pytest.approx((1 + work) / 4)
