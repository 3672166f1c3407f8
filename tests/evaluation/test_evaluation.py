"""End to end: a tiny model trained on the embedded corpus, evaluated on the embedded 1-shot mixture through
seqio.Evaluator on an 8-device mesh, where it beats chance; plus the summary arithmetic and the runner's batching."""
import json
import os

import gin
import jax
import numpy as np
import pytest
import seqio

from skip_t5x import cli, gin_utils
from skip_t5x.evaluation import evaluate as evaluation
from skip_t5x.evaluation import runner as runner_lib
from skip_t5x.evaluation import summary as eval_summary

TRAIN_STEPS = 300
TRAIN_BINDINGS = [
    "MIXTURE_OR_TASK_NAME = 'embedded_lm'", "TASK_FEATURE_LENGTHS = {'targets': 64}", f"TRAIN_STEPS = {TRAIN_STEPS}",
    "BATCH_SIZE = 8", "MESH_DATA = 4", "MESH_FSDP = 2", "MESH_MODEL = 1", "OPTIMIZER = 'adamw'",
    "LR_SCHEDULE = 'cosine'", "LEARNING_RATE = 0.005", "WARMUP_STEPS = 20", f"CHECKPOINT_PERIOD = {TRAIN_STEPS}",
    "LOG_EVERY_STEPS = 50", "train.tensorboard = False",
]
EVAL_BINDINGS = [
    "EVAL_TASK_FEATURE_LENGTHS = {'inputs': 96, 'targets': 24}", "EVAL_BATCH_SIZE = 8", "MAX_DECODE_LENGTH = 4",
    "skip_t5x.data.embedded_eval.embedded_eval_options.max_items = 6",
]


@pytest.fixture(scope="module")
def trained_model_dir(tmp_path_factory):
  from skip_t5x import training

  model_dir = str(tmp_path_factory.mktemp("tiny_run"))
  cli.import_registrations()
  gin.clear_config()
  gin_utils.parse_gin(["runs/pretrain.gin", "models/skip_tiny.gin"], TRAIN_BINDINGS,
                      extra_bindings={"MODEL_DIR": model_dir}, finalize=False)
  try:
    result = training.train()
  finally:
    gin.clear_config()
  assert result.step == TRAIN_STEPS
  return model_dir


@gin.configurable
def _capture_model_and_mesh(model=gin.REQUIRED, mesh=gin.REQUIRED):
  return model, mesh


def _parse_eval(model_dir, extra=()):
  gin.clear_config()
  files = gin_utils.train_config_first(model_dir, ["runs/demo_eval.gin"], use_train_config=True)
  assert files[0] == os.path.join(model_dir, "config.gin")
  gin_utils.parse_gin(files, EVAL_BINDINGS + list(extra), extra_bindings={"MODEL_DIR": model_dir},
                      finalize=False)


@pytest.mark.slow
def test_end_to_end_eval_writes_summary(trained_model_dir):
  _parse_eval(trained_model_dir)
  try:
    summary = evaluation.evaluate()
  finally:
    gin.clear_config()
  out = os.path.join(trained_model_dir, "eval")
  files = sorted(os.listdir(out))
  for name in ("summary.json", "summary.md", "embedded_1shot_lambada-metrics.jsonl",
               "embedded_1shot_continuation-metrics.jsonl"):
    assert name in files
  with open(os.path.join(out, "summary.json")) as f:
    written = json.load(f)
  assert written["step"] == TRAIN_STEPS and written["mixture_or_task_name"] == "embedded_fewshot"
  tasks = written["tasks"]
  assert set(tasks) == {"embedded_1shot_lambada", "embedded_1shot_continuation"}
  assert tasks["embedded_1shot_lambada"]["kind"] == "NLG" and tasks["embedded_1shot_lambada"]["metric"] == "exact_match"
  assert tasks["embedded_1shot_continuation"]["metric"] == "accuracy"
  assert tasks["embedded_1shot_continuation"]["chance"] == pytest.approx(25.0)
  assert 0.0 < tasks["embedded_1shot_lambada"]["chance"] < 100.0  # a random word of the passage
  scores = [t["score"] for t in tasks.values()]
  assert all(0.0 <= s <= 100.0 for s in scores)
  assert written["averages"]["overall"] == pytest.approx(sum(scores) / 2)
  assert written["averages"]["NLU"] == pytest.approx(tasks["embedded_1shot_continuation"]["score"])
  assert 0.0 <= written["realized_skip_ratio"] <= 1.0 and written["target_skip_ratio"] == 0.5
  assert written["flops_per_token"]["dense"] > 0 and written["flops_per_token"]["routed"] > 0
  # accuracy on 6 items of 4 candidates is a multiple of 100/6
  assert (tasks["embedded_1shot_continuation"]["score"] * 6 / 100) == pytest.approx(
      round(tasks["embedded_1shot_continuation"]["score"] * 6 / 100))
  with open(os.path.join(out, "summary.md")) as f:
    table = f.read()
  assert "| embedded_1shot_continuation | NLU | accuracy |" in table and "**Overall average**" in table
  assert summary["tasks"] == written["tasks"]


@pytest.mark.slow
def test_trained_tiny_model_beats_chance_on_the_embedded_continuation_task(trained_model_dir):
  """200 steps of the tiny skip model put the right next sentence first far more often than the 25% chance."""
  _parse_eval(trained_model_dir, ["MIXTURE_OR_TASK_NAME = 'embedded_1shot_continuation'",
                                  "skip_t5x.data.embedded_eval.embedded_eval_options.max_items = 64"])
  try:
    summary = evaluation.evaluate(output_dir=os.path.join(trained_model_dir, "eval_continuation"))
  finally:
    gin.clear_config()
  task = summary["tasks"]["embedded_1shot_continuation"]
  assert task["chance"] == pytest.approx(25.0)
  # 64 items: chance accuracy has a standard deviation of 5.4 points, so 45 is 3.7 of them above it
  assert task["score"] >= 45.0, task


@pytest.mark.slow
def test_runner_scores_match_direct_model_calls(trained_model_dir):
  """The sharded, batched, padded score_fn returns, per index, what model.score_batch gives for that row."""
  _parse_eval(trained_model_dir, ["_capture_model_and_mesh.model = %MODEL",
                                   "_capture_model_and_mesh.mesh = @MeshConfig()"])
  try:
    model, mesh_config = _capture_model_and_mesh()
  finally:
    gin.clear_config()
  from skip_t5x import parallel
  from skip_t5x.training import checkpoints

  mesh = parallel.create_mesh(mesh_config)
  rules = mesh_config.rules()
  assert mesh.size == 8
  task = seqio.get_mixture_or_task("embedded_1shot_continuation")
  gin.parse_config("skip_t5x.data.embedded_eval.embedded_eval_options.max_items = 3")
  try:
    ds = task.get_dataset({"inputs": 96, "targets": 24}, split="validation", shuffle=False)
    converted = seqio.PrefixLMFeatureConverter(pack=False)(ds, {"inputs": 96, "targets": 24}).enumerate()
  finally:
    gin.clear_config()
  abstract = parallel.Placement(model, mesh, rules, 120).abstract_params()
  params, _ = checkpoints.restore_params(trained_model_dir, abstract)
  runner = runner_lib.ModelRunner(model, params, mesh, rules, batch_size=8, max_decode_length=2, eos_id=1)
  scored = runner.score_fn(converted)
  rows = [features for _, features in converted.as_numpy_iterator()]
  assert [i for i, _ in scored] == list(range(len(rows))) and len(rows) == 12  # 3 items x 4 candidates
  host_params = jax.device_get(params)
  with jax.set_mesh(None):
    for index in (0, 11):
      batch = {k: np.asarray(rows[index][k])[None] for k in runner_lib.MODEL_FEATURES}
      direct = float(model.score_batch(host_params, batch)[0])
      assert scored[index][1] == pytest.approx(direct, rel=1e-4, abs=1e-4)
  assert all(s < 0 for _, s in scored)  # log-likelihoods of non-empty targets


def test_summary_averages_by_kind():
  from skip_t5x.data import fewshot_tasks

  metrics = {"fewshot_1shot_boolq": {"accuracy": 60.0, "chance_accuracy": 50.0},
             "fewshot_1shot_copa": {"accuracy": 70.0},
             "fewshot_1shot_drop": {"f1": 20.0, "exact_match": 10.0},
             "fewshot_1shot_multirc": {"f1a": 50.0, "accuracy": 55.0}}
  assert all(t in fewshot_tasks.SPECS_BY_TASK_NAME for t in metrics)
  summary = eval_summary.build_summary(metrics, mixture_or_task_name="m", step=3, model_dir="/x", density=0.6,
                                       flops_per_token={"dense": 2e6, "routed": 1.5e6})
  assert summary["tasks"]["fewshot_1shot_drop"]["score"] == 20.0  # DROP reports F1
  assert summary["tasks"]["fewshot_1shot_multirc"]["score"] == 50.0  # MultiRC reports F1a
  assert summary["averages"] == {"NLG": 20.0, "NLU": 60.0, "overall": 50.0}
  assert summary["realized_skip_ratio"] == pytest.approx(0.4)
  table = eval_summary.markdown(summary)
  assert "| fewshot_1shot_drop | NLG | f1 | 20.0 | - |" in table and "1.50M routed, 2.00M dense" in table
  assert "| fewshot_1shot_boolq | NLU | accuracy | 60.0 | 50.0 |" in table
  assert summary["tasks"]["fewshot_1shot_boolq"]["chance"] == 50.0
  with pytest.raises(ValueError, match="primary metric 'accuracy' missing"):
    eval_summary.build_summary({"fewshot_1shot_boolq": {"f1": 1.0}}, mixture_or_task_name="m", step=0,
                               model_dir="/x", density=None)


def test_eval_rejects_bad_lengths_and_unknown_tasks():
  with pytest.raises(ValueError, match="task_feature_lengths"):
    evaluation.check_feature_lengths({"targets": 16})
  with pytest.raises(ValueError, match="'no_such_mixture' is not a registered"):
    evaluation.evaluate(model=object(), model_dir="/tmp/none", mixture_or_task_name="no_such_mixture")
