"""A two-arm, few-step study end to end (train and eval subprocesses, measurement, timing, report), its numbers
checked against the arms' own files, then an interrupted study resumed without retraining the finished arm."""
import io
import json
import math
import os
import shutil
import statistics

import pytest

from skip_t5x.layers.routing import RoutingConfig
from skip_t5x.model import flops
from skip_t5x.model.decoder import DecoderConfig
from skip_t5x.study import configs, session

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_study.gin")
SEQ_LEN = 32  # tiny_study.gin's sequence length


def _json(path):
  with open(path) as f:
    return json.load(f)


def _records(run_dir):
  with open(os.path.join(run_dir, "metrics", "train.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def tiny_config(num_layers, routed):
  """models/dense_tiny.gin / skip_tiny.gin, written out by hand (independent of the gin files the runs parsed)."""
  routing = RoutingConfig(skip_ratio=0.5, routed="layer") if routed else RoutingConfig(skip_ratio=0.0, routed="none")
  return DecoderConfig(vocab_size=2048, num_layers=num_layers, d_model=64, num_heads=4, num_kv_heads=4, head_dim=16,
                       mlp_dim=256, routing=routing)


def _run_study(study_dir):
  out = io.StringIO()
  status = session.run_study(configs.load_study([TINY]), study_dir, out=out)
  return status, out.getvalue()


def check_report_against_run_files(study_dir):
  report = _json(os.path.join(study_dir, "report.json"))["arms"]
  infer = {}
  for arm, layers, routed in (("dense", 1, False), ("skip", 2, True)):
    run_dir = os.path.join(study_dir, arm, "seed0")
    stats = report[arm]["stats"]
    records, summary = _records(run_dir), _json(os.path.join(run_dir, "eval", "summary.json"))
    assert stats["final_train_loss"]["mean"] == pytest.approx(records[-1]["loss"])
    train_density = statistics.fmean(r["router/density"] for r in records) if routed else None
    infer_density = summary["router_density"]
    if routed:
      assert stats["train_skip"]["mean"] == pytest.approx(1 - train_density)
      assert stats["eval_skip"]["mean"] == pytest.approx(summary["realized_skip_ratio"])
    config = tiny_config(layers, routed)
    train = flops.total_flops_per_token(config, SEQ_LEN, train_density, training=True)
    infer[arm] = flops.total_flops_per_token(config, SEQ_LEN, infer_density)
    assert stats["train_flops"]["mean"] == pytest.approx(train)
    assert stats["infer_flops"]["mean"] == pytest.approx(infer[arm])
    heldout = stats["heldout_loss"]["mean"]
    assert stats["heldout_ppl"]["mean"] == pytest.approx(math.exp(heldout))
    assert abs(heldout - records[-1]["cross_entropy"]) < 0.5  # the same kind of text, after the same training
    assert stats["time_masked"]["mean"] > 0 and stats["time_gather"]["mean"] > 0
  table = open(os.path.join(study_dir, "report.md")).read()
  assert f"| {infer['skip'] / infer['dense']:.2f} |" in table  # inference FLOPs relative to the matched dense arm


@pytest.mark.slow
def test_two_arm_study_end_to_end_then_resume(tmp_path):
  study_dir = str(tmp_path)
  status, out = _run_study(study_dir)
  assert status == 0, out
  assert "[2/2 skip/seed0 | study" in out and "step 8/8" in out
  check_report_against_run_files(study_dir)
  for name in ("quality_vs_flops.png", "training_curves.png", "density_per_layer.png", "token_skipping.png"):
    assert os.path.getsize(os.path.join(study_dir, name)) > 1000

  # The skip arm is cut short after its step-4 checkpoint (before its last checkpoint, eval and done marker).
  dense_dir, skip_dir = os.path.join(study_dir, "dense", "seed0"), os.path.join(study_dir, "skip", "seed0")
  dense_metrics = open(os.path.join(dense_dir, "metrics", "train.jsonl")).read()
  dense_mtime = os.path.getmtime(os.path.join(dense_dir, "metrics", "train.jsonl"))
  for path in ("checkpoints/8", "eval", "study/done.json", "study/analysis.json"):
    full = os.path.join(skip_dir, path)
    shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)

  status, out = _run_study(study_dir)
  assert status == 0, out
  dense_lines = [line for line in out.splitlines() if "dense/seed0 |" in line]
  assert len(dense_lines) == 1 and dense_lines[0].endswith(f"finished earlier: {dense_dir}")  # not run again
  assert "Resuming from checkpoint step 4" in out
  assert open(os.path.join(dense_dir, "metrics", "train.jsonl")).read() == dense_metrics
  assert os.path.getmtime(os.path.join(dense_dir, "metrics", "train.jsonl")) == dense_mtime
  assert [r["step"] for r in _records(skip_dir)] == [2, 4, 6, 8]  # resumed: 6 and 8 logged again after step 4
  assert os.path.isfile(os.path.join(skip_dir, "study", "done.json"))
  check_report_against_run_files(study_dir)
