"""The report built from hand-made run directories (no training): numbers, ratios, sentences, files, the command."""
import json
import math
import os

import pytest

from skip_t5x import report as report_command
from skip_t5x.study import report, runs


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    if path.endswith(".jsonl"):
      f.write("".join(json.dumps(r) + "\n" for r in data))
    else:
      json.dump(data, f)


def make_run(root, arm, seed, *, family, heldout, overall, densities, infer_flops, seconds=None, study=True):
  run_dir = os.path.join(root, arm, f"seed{seed}")
  records = [{"step": 10 * (i + 1), "loss": 5.0 - i, **({"router/density": d} if d is not None else {})}
             for i, d in enumerate(densities)]
  _write(os.path.join(run_dir, "metrics", "train.jsonl"), records)
  summary = {"realized_skip_ratio": None if densities[0] is None else 0.5,
             "averages": {"NLU": overall + 1, "NLG": overall - 1, "overall": overall},
             "tasks": {"embedded_1shot_continuation": {"kind": "NLU", "metric": "accuracy", "score": overall + 1,
                                                       "chance": 25.0}}}
  _write(os.path.join(run_dir, "eval", "summary.json"), summary)
  if study:
    _write(os.path.join(run_dir, "study", "arm.json"),
           {"arm": arm, "seed": seed, "group": "", "family": family, "label": arm, "reference_arm": "dense",
            "method_arm": "skip"})
    _write(os.path.join(run_dir, "study", "done.json"), {})
    _write(os.path.join(run_dir, "study", "analysis.json"),
           {"num_params": 1000, "num_layers": 2, "flops": {"train_realized": 3 * infer_flops,
                                                           "infer_realized": infer_flops},
            "heldout": {"cross_entropy": heldout, "perplexity": math.exp(heldout), "density": 0.5,
                        "density_per_module": {"layer_00": 0.4, "layer_01": 0.6} if densities[0] else {}},
            "tokens": {"most_skipped": [{"token": "\\n", "id": 3, "occurrences": 20, "skip_fraction": 0.9}],
                       "least_skipped": [{"token": "▁the", "id": 4, "occurrences": 30, "skip_fraction": 0.1}]},
            "sample": {"tokens": ["a", "b"], "modules": ["layer_00", "layer_01"], "execute": [[1, 0], [0, 1]]}
            if densities[0] else None})
    if seconds is not None:
      _write(os.path.join(run_dir, "study", "timing.json"), {"seconds_per_step": seconds})
  return run_dir


@pytest.fixture(name="study_dir")
def fixture_study_dir(tmp_path):
  root = str(tmp_path)
  _write(os.path.join(root, "skip", "seed0", "eval_fewshot_1shot_all29", "summary.json"),
         {"averages": {"NLU": 50.0, "NLG": None, "overall": 50.0}, "tasks": {}})  # a second evaluation mixture
  for seed, (h_dense, h_skip) in enumerate([(3.5, 3.0), (3.6, 3.2)]):
    make_run(root, "dense", seed, family="dense", heldout=h_dense, overall=40.0 + seed, densities=[None, None],
             infer_flops=4e6, seconds={"masked": 0.2, "gather": 0.2} if seed == 0 else None)
    make_run(root, "skip", seed, family="method", heldout=h_skip, overall=44.0 + 2 * seed, densities=[0.8, 0.4],
             infer_flops=5e6, seconds={"masked": 0.3, "gather": 0.1} if seed == 0 else None)
  return root


def test_report_numbers_are_means_and_spreads_of_the_runs_files(study_dir):
  result = report.build_report([study_dir], study_dir)
  arms = result.data["arms"]
  skip, dense = arms["skip"]["stats"], arms["dense"]["stats"]
  assert skip["heldout_loss"]["mean"] == pytest.approx(3.1) and skip["heldout_loss"]["n"] == 2
  assert skip["heldout_loss"]["spread"] == pytest.approx(math.sqrt(0.02))  # sample std of 3.0 and 3.2
  assert skip["train_skip"]["mean"] == pytest.approx(1 - 0.6)  # 1 - mean of the logged densities 0.8, 0.4
  assert skip["final_train_loss"]["mean"] == pytest.approx(4.0)  # the last logged loss
  assert dense["train_skip"]["n"] == 0  # no routers: no skip
  assert skip["time_masked"] == {"mean": 0.3, "spread": None, "n": 1}
  row = next(line for line in result.table.splitlines() if line.startswith("| skip "))
  assert "| 1.25 |" in row  # inference FLOPs 5M / 4M
  assert "300 ms (1.50x)" in row and "100 ms (0.50x)" in row  # step time relative to the matched dense arm
  sentences = result.data["headline"][""]["sentences"]
  # dense - skip = 3.55 - 3.1 = 0.45; spreads 0.0707 (3.5, 3.6) and 0.1414 (3.0, 3.2) -> sqrt(0.025) = 0.158: 2.8x
  assert sentences[0] == ("On held-out loss, skip (3.100 ± 0.141) beats dense by 0.450 (2.8x the seed spread).")
  assert result.markdown.startswith("# Study report\n\n" + " ".join(sentences))
  for name in ("quality_vs_flops.png", "training_curves.png", "density_per_layer.png", "token_skipping.png"):
    with open(os.path.join(study_dir, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "| skip | 50.0 | - | 50.0 |" in result.markdown  # the second mixture's averages, in their own table
  assert "`\\n`" in result.markdown and "| embedded_1shot_continuation | NLU | accuracy | 25.0 |" in result.markdown


def test_runs_not_made_by_the_study_are_named_by_their_folders(tmp_path):
  a = make_run(str(tmp_path), "mine", 3, family="", heldout=3.0, overall=1.0, densities=[0.5], infer_flops=1.0,
               study=False)
  b = make_run(str(tmp_path / "other"), "x", 0, family="", heldout=3.0, overall=1.0, densities=[0.5],
               infer_flops=1.0, study=False)
  found = runs.load_runs([a, str(tmp_path / "other")])
  assert [(r.arm, r.seed, r.finished) for r in found] == [("mine", 3, False), ("x", 0, False)]
  assert found[1].run_dir == b
  with pytest.raises(ValueError, match="holds no run"):
    runs.find_run_dirs([str(tmp_path / "nothing")])


def test_report_command_writes_and_prints(study_dir, capsys, tmp_path):
  out = str(tmp_path / "elsewhere")
  assert report_command.main([study_dir, "--out", out, "--reference", "dense", "--method", "skip"]) == 0
  printed = capsys.readouterr().out
  assert printed.startswith("| Arm |") and "On held-out loss, skip" in printed
  assert os.path.isfile(os.path.join(out, "report.md")) and os.path.isfile(os.path.join(out, "report.json"))
  assert report_command.main([study_dir, str(tmp_path)]) == 2  # several directories need --out
