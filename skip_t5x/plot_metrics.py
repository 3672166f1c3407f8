"""Plots a run's training curves from DIR/metrics/train.jsonl into a PNG.

    python -m skip_t5x.plot_metrics --model_dir=runs/demo [--out=runs/demo/metrics/train.png]

Panels: loss and cross entropy; token accuracy; realized density per routed module with the argmax (evaluation)
density and the target; tokens/s. Needs matplotlib (`pip install -e '.[plot]'`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List

from skip_t5x.training import metrics_logging


def read_metrics(model_dir: str) -> List[Dict[str, float]]:
  """One dict per logged step; raises a clear error for a missing, empty or malformed file."""
  path = metrics_logging.metrics_path(model_dir)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no metrics at {path}: has the run logged a step yet?")
  rows = metrics_logging.read_metrics(model_dir, strict=True)
  if not rows:
    raise ValueError(f"{path} holds no logged steps")
  return rows


def plot(rows: List[Dict[str, float]], out: str, target_density: float | None = None) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  steps = [r["step"] for r in rows]
  series = lambda key: [r.get(key, float("nan")) for r in rows]
  fig, axes = plt.subplots(2, 2, figsize=(11, 7))
  ax = axes[0][0]
  ax.plot(steps, series("loss"), label="loss")
  ax.plot(steps, series("cross_entropy"), label="cross entropy")
  ax.set_title("loss"); ax.legend()
  axes[0][1].plot(steps, series("accuracy")); axes[0][1].set_title("token accuracy")
  ax = axes[1][0]
  modules = sorted({k for r in rows for k in r if k.startswith("router/density/")})
  for key in modules:
    ax.plot(steps, series(key), label=key.split("/")[-1], linewidth=1)
  if any("router/argmax_density" in r for r in rows):
    ax.plot(steps, series("router/argmax_density"), "k--", label="argmax (eval) density")
  if target_density is not None:
    ax.axhline(target_density, color="r", linestyle=":", label="target")
  ax.set_title("realized execute density"); ax.set_ylim(0, 1.05)
  if modules:
    ax.legend(fontsize=7)
  axes[1][1].plot(steps, series("tokens_per_sec")); axes[1][1].set_title("tokens / s")
  for ax in axes.flat:
    ax.set_xlabel("step")
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--out", default=None, help="PNG path (default: MODEL_DIR/metrics/train.png)")
  parser.add_argument("--target_density", type=float, default=None, help="draw the budget line (1 - SKIP_RATIO)")
  args = parser.parse_args(argv)
  try:
    rows = read_metrics(args.model_dir)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  out = plot(rows, args.out or os.path.join(args.model_dir, "metrics", "train.png"), args.target_density)
  print(f"wrote {out} ({len(rows)} logged steps)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
