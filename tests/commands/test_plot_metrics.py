"""The training-curve plot reads train.jsonl, writes a PNG, and names a malformed line."""
import json
import os

import pytest

from skip_t5x import plot_metrics


def _write(tmp_path, lines):
  os.makedirs(tmp_path / "metrics")
  with open(tmp_path / "metrics" / "train.jsonl", "w") as f:
    f.write("\n".join(lines) + "\n")


def test_plot_writes_a_png(tmp_path):
  rows = [{"step": s, "loss": 5.0 - s / 10, "cross_entropy": 4.9 - s / 10, "accuracy": s / 100,
           "router/density/layer_01": 0.7 - s / 100, "router/argmax_density": 0.9 - s / 50, "tokens_per_sec": 1000.0}
          for s in range(1, 11)]
  _write(tmp_path, [json.dumps(r) for r in rows])
  assert plot_metrics.main([f"--model_dir={tmp_path}", "--target_density=0.5"]) == 0
  with open(tmp_path / "metrics" / "train.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_malformed_line_is_named(tmp_path):
  _write(tmp_path, ['{"step": 1, "loss": 2.0}', "{not json"])
  with pytest.raises(ValueError, match=r"train.jsonl:2"):
    plot_metrics.read_metrics(str(tmp_path))
  assert plot_metrics.main(["--model_dir=/nonexistent/run"]) == 2
